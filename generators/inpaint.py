"""Self-conditioned inpainting reconstructions (B-Free style): a second pixel-pair generator kind.

The whole image goes through a diffusers inpainting pipeline with an empty mask (nothing is
repainted, every pixel is re-decoded), or with a seeded random rectangle as content augmentation.
"""

from __future__ import annotations

import random

from aig.pipeline.devices import versions

from .diffusion import load_pipeline, run_checked
from .output_checks import problem_message
from .reconstruct import AutoencoderSpec, ReconstructWorker

KIND = "inpaint"
FACTOR = 8  # diffusers inpainting pipelines need sides that are multiples of 8


def rectangle_mask(width: int, height: int, seed: int, min_frac: float = 0.1, max_frac: float = 0.4):
    """A white (repaint) rectangle on black (keep), placed and sized from the seed."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    w = max(1, int(width * rng.uniform(min_frac, max_frac)))
    h = max(1, int(height * rng.uniform(min_frac, max_frac)))
    x, y = rng.randrange(0, width - w + 1), rng.randrange(0, height - h + 1)
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle((x, y, x + w - 1, y + h - 1), fill=255)
    return mask, [x, y, x + w, y + h]


class InpaintWorker(ReconstructWorker):
    """Same pairing, cropping and writing as the autoencoder worker; the model is an inpainting pipeline."""

    kind = KIND
    stage = "inpaint"

    def _load(self, spec: AutoencoderSpec) -> None:
        self.pipe, commit = load_pipeline(spec.model, spec.revision, self.device, self.dtype, None, False)
        self.factor = FACTOR
        self.base = {"model_id": spec.model, "revision": spec.revision, "commit": commit,
                     "pipeline": type(self.pipe).__name__, "scheduler": type(self.pipe.scheduler).__name__}

    def _batch(self, batch: list, splits: int, model_s: list | None = None) -> list:
        """The whole batch is model work: it holds the worker's lock throughout (its seconds go to model_s)."""
        import time

        with self._model_lock:
            t = time.perf_counter()
            out = self._inpaint(batch, splits)
            if model_s is not None:
                model_s.append(time.perf_counter() - t)
        return out

    def _inpaint(self, batch: list, splits: int) -> list:
        import numpy as np
        import torch

        out = []
        for row, crop, _, seed in batch:  # masks and prompts differ per image: one call each
            pair_id = self._pair_id(row)
            if self.cfg.mask == "rectangle":
                mask, rect = rectangle_mask(crop.width, crop.height, seed)
            else:
                from PIL import Image

                mask, rect = Image.new("L", crop.size, 0), None
            prompt = row["caption"] if self.cfg.use_caption and row.get("caption") else ""

            def call(crop=crop, mask=mask, prompt=prompt, seed=seed):
                return self.pipe(prompt, image=crop, mask_image=mask, height=crop.height, width=crop.width,
                                 num_inference_steps=self.cfg.steps, strength=self.cfg.strength,
                                 guidance_scale=self.cfg.guidance, generator=torch.Generator("cpu").manual_seed(seed),
                                 output_type="np").images

            reference = np.asarray(crop, np.float32) / 255
            (image,), (problem,), upcast = run_checked(self.pipe, self.dtype, call, [reference])
            if problem:
                error = problem_message(problem, self.spec.model, bool(upcast))
                out.append((None, {"problem": problem, "error": error}))
                continue
            out.append((image.convert("RGB"), {
                "seed": seed, "batch": [pair_id], "oom_splits": splits, "latent": "diffusion", "mask": self.cfg.mask,
                "mask_box": rect, "prompt": prompt, "steps": self.cfg.steps, "strength": self.cfg.strength,
                "guidance": self.cfg.guidance, "dtype": str(self.dtype).removeprefix("torch."), "upcast": upcast,
                "device": self.device, "threads": self.threads, **versions()}))
        return out
