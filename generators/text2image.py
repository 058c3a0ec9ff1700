"""The generate stage: text-to-image fakes for the semantic task, prompted by the real images' captions."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aig.pipeline.chunks import Outcome, failure_outcome, sample_outcome, write_chunk
from aig.pipeline.config import GenerateConfig, ShardConfig
from aig.pipeline.decode import encode_image
from aig.pipeline.devices import torch_setup, versions

from .batching import run_in_batches
from .diffusion import load_pipeline, run_checked
from .output_checks import problem_message
from .naming import generator_name
from .reconstruct import cpu_threads, pair_seed

STAGE = "generate"
KIND = "text-to-image"


def vae_scale(pipe) -> int:
    return int(getattr(pipe, "vae_scale_factor", None) or 8)


def native_side(pipe) -> int:
    """The pipeline's native image side in pixels: its denoiser's sample size times the VAE's factor."""
    for name in ("unet", "transformer"):
        s = getattr(getattr(getattr(pipe, name, None), "config", None), "sample_size", None)
        if isinstance(s, int):
            return s * vae_scale(pipe)
    d = getattr(pipe, "default_sample_size", None)
    return d * vae_scale(pipe) if isinstance(d, int) else 512


def size_multiple(pipe) -> int:
    """Sides must be multiples of this: the VAE's factor (x2 for transformers, which patch or pack 2x2 latents),
    at least 8 (diffusers' pipelines check it)."""
    return max(8, vae_scale(pipe) * (2 if getattr(pipe, "transformer", None) is not None else 1))


def aspect_size(aspect: float, area: int, multiple: int) -> tuple[int, int]:
    """(width, height) of about `area` pixels at `aspect` (width / height), each side a multiple of `multiple`."""
    w = max(multiple, round((area * aspect) ** 0.5 / multiple) * multiple)
    h = max(multiple, round((area / aspect) ** 0.5 / multiple) * multiple)
    return w, h


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    model: str
    revision: str | None = None

    @classmethod
    def parse(cls, spec: str | dict) -> PipelineSpec:
        if isinstance(spec, str):
            spec = {"model": spec}
        return cls(spec.get("name") or generator_name(spec["model"]), spec["model"], spec.get("revision"))

    def group(self) -> str:
        return f"semantic-{self.name}"


class TextToImageWorker:
    """Loads one diffusers pipeline once (per Ray actor); one image per (caption, index) with its own seed."""

    def __init__(self, spec: PipelineSpec, cfg: GenerateConfig, threads: int = 1):
        self.device, self.dtype, self.threads = torch_setup(cfg.dtype, threads)
        self.spec, self.cfg = spec, cfg
        self.pipe, self.commit = load_pipeline(spec.model, spec.revision, self.device, self.dtype, cfg.scheduler,
                                               cfg.safety_checker)
        native = native_side(self.pipe)
        self.base_size = (cfg.width or native, cfg.height or native)

    def job_size(self, row: dict) -> tuple[int, int]:
        """aspect 'source': the source real's aspect ratio at the configured (or native) pixel area; else fixed."""
        w, h = self.base_size
        if self.cfg.aspect == "source" and row.get("width") and row.get("height"):
            return aspect_size(row["width"] / row["height"], w * h, size_multiple(self.pipe))
        return w, h

    def run_chunk(self, root: str, chunk: int, real_rows: list[dict], shard_cfg: ShardConfig, run_id: str,
                  group: str | None = None) -> dict:
        start = time.perf_counter()
        outcomes = self.generate_rows(real_rows, run_id, group or self.spec.group(), chunk)
        stats = write_chunk(root, group or self.spec.group(), chunk, outcomes, shard_cfg, STAGE, run_id)
        stats["seconds"] = time.perf_counter() - start
        return stats

    def jobs(self, real_rows: list[dict]) -> list[dict]:
        """One job per (real image with a caption, image index): key, prompt, seed."""
        out = []
        for row in real_rows:
            if not row.get("caption"):
                continue
            for i in range(self.cfg.images_per_prompt):
                key = f"{row['source_id']}-{self.spec.name}-{i}"
                w, h = self.job_size(row)
                out.append({"key": key, "row": row, "prompt": row["caption"], "seed": pair_seed(self.cfg.seed, key),
                            "width": w, "height": h})
        return out

    def generate_rows(self, real_rows: list[dict], run_id: str, group: str = "", chunk: int = 0) -> list[Outcome]:
        """Batches on the model; each batch's images are encoded in a CPU pool while the model runs the next."""
        jobs = self.jobs(real_rows)
        with ThreadPoolExecutor(max_workers=cpu_threads(self.device)) as pool:
            def batch(part: list[dict], splits: int) -> list:
                return [pool.submit(self._outcome, job, img, meta, run_id, group, chunk)
                        for job, (img, meta) in zip(part, self.render(part, splits))]

            return [f.result() for f in run_in_batches(jobs, self.cfg.batch_size,
                                                       key=lambda j: (j["width"], j["height"]), fn=batch)]

    def render(self, batch: list[dict], splits: int) -> list:
        """One (image, meta) per job; image None and meta['problem'] set for an output that cannot be stored."""
        import torch

        cfg = self.cfg
        kwargs = {"num_inference_steps": cfg.steps, "guidance_scale": cfg.guidance, "height": batch[0]["height"],
                  "width": batch[0]["width"], "output_type": "np"}
        if cfg.negative_prompt:
            kwargs["negative_prompt"] = [cfg.negative_prompt] * len(batch)

        def call():
            generators = [torch.Generator("cpu").manual_seed(j["seed"]) for j in batch]
            return self.pipe([j["prompt"] for j in batch], generator=generators, **kwargs).images

        images, problems, upcast = run_checked(self.pipe, self.dtype, call)
        keys = [j["key"] for j in batch]
        return [(None, {"problem": p, "error": problem_message(p, self.spec.model, bool(upcast))}) if p
                else (img.convert("RGB"), {"batch": keys, "oom_splits": splits, "upcast": upcast})
                for img, p in zip(images, problems)]

    def provenance(self, job: dict, meta: dict) -> dict:
        cfg = self.cfg
        return {
            "kind": KIND, "model_id": self.spec.model, "revision": self.spec.revision, "commit": self.commit,
            "pipeline": type(self.pipe).__name__, "scheduler": type(self.pipe.scheduler).__name__,
            "steps": cfg.steps, "guidance": cfg.guidance, "seed": job["seed"], "prompt": job["prompt"],
            "negative_prompt": cfg.negative_prompt or None, "width": job["width"], "height": job["height"],
            "aspect": cfg.aspect,
            "dtype": str(self.dtype).removeprefix("torch."), "device": self.device, "threads": self.threads,
            "safety_checker": "on" if cfg.safety_checker else "off", "source_key": job["row"].get("key"), **meta,
            **versions(),
        }

    def _outcome(self, job: dict, img, meta: dict, run_id: str, group: str = "", chunk: int = 0) -> Outcome:
        row = job["row"]
        if img is None:  # non-finite or degenerate output: nothing stored
            return failure_outcome(row["input_path"], run_id, STAGE, group or self.spec.group(), chunk,
                                   meta["problem"], meta["error"])
        data, ext = encode_image(img, "png", 95)
        return sample_outcome(
            key=job["key"], data=data, ext=ext, provenance=self.provenance(job, meta), run_id=run_id, stage=STAGE,
            task="semantic", split=row["split"], label="fake", source_id=row["source_id"], group_id=row["group_id"],
            pair_id=None, generator=self.spec.name, generator_kind=KIND, input_path=row["input_path"],
            origin=row["origin"], caption=job["prompt"], width=img.width, height=img.height,
            model_id=self.spec.model, seed=job["seed"], prompt=job["prompt"],
        )
