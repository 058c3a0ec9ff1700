"""The generate stage: text-to-image fakes for the semantic task, prompted by the real images' captions."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pipeline.chunks import Outcome, sample_outcome, write_chunk
from pipeline.config import GenerateConfig, ShardConfig
from pipeline.decode import encode_image
from pipeline.devices import torch_setup, versions

from .batching import run_in_batches
from .diffusion import load_pipeline
from .naming import generator_name
from .reconstruct import pair_seed

STAGE = "generate"
KIND = "text-to-image"


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

    def run_chunk(self, root: str, chunk: int, real_rows: list[dict], shard_cfg: ShardConfig, run_id: str,
                  group: str | None = None) -> dict:
        start = time.perf_counter()
        outcomes = self.generate_rows(real_rows, run_id)
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
                out.append({"key": key, "row": row, "prompt": row["caption"], "seed": pair_seed(self.cfg.seed, key)})
        return out

    def generate_rows(self, real_rows: list[dict], run_id: str) -> list[Outcome]:
        jobs = self.jobs(real_rows)
        images = run_in_batches(jobs, self.cfg.batch_size, key=lambda j: 0, fn=self.render)
        return [self._outcome(job, img, meta, run_id) for job, (img, meta) in zip(jobs, images)]

    def render(self, batch: list[dict], splits: int) -> list:
        import torch

        cfg = self.cfg
        generators = [torch.Generator("cpu").manual_seed(j["seed"]) for j in batch]
        kwargs = {"num_inference_steps": cfg.steps, "guidance_scale": cfg.guidance, "height": cfg.height,
                  "width": cfg.width, "generator": generators, "output_type": "pil"}
        if cfg.negative_prompt:
            kwargs["negative_prompt"] = [cfg.negative_prompt] * len(batch)
        images = self.pipe([j["prompt"] for j in batch], **kwargs).images
        keys = [j["key"] for j in batch]
        return [(img.convert("RGB"), {"batch": keys, "oom_splits": splits}) for img in images]

    def provenance(self, job: dict, meta: dict) -> dict:
        cfg = self.cfg
        return {
            "kind": KIND, "model_id": self.spec.model, "revision": self.spec.revision, "commit": self.commit,
            "pipeline": type(self.pipe).__name__, "scheduler": type(self.pipe.scheduler).__name__,
            "steps": cfg.steps, "guidance": cfg.guidance, "seed": job["seed"], "prompt": job["prompt"],
            "negative_prompt": cfg.negative_prompt or None, "width": cfg.width, "height": cfg.height,
            "dtype": str(self.dtype).removeprefix("torch."), "device": self.device, "threads": self.threads,
            "safety_checker": "on" if cfg.safety_checker else "off", "source_key": job["row"].get("key"), **meta,
            **versions(),
        }

    def _outcome(self, job: dict, img, meta: dict, run_id: str) -> Outcome:
        row = job["row"]
        data, ext = encode_image(img, "png", 95)
        return sample_outcome(
            key=job["key"], data=data, ext=ext, provenance=self.provenance(job, meta), run_id=run_id, stage=STAGE,
            task="semantic", split=row["split"], label="fake", source_id=row["source_id"], group_id=row["group_id"],
            pair_id=None, generator=self.spec.name, generator_kind=KIND, input_path=row["input_path"],
            origin=row["origin"], caption=job["prompt"], width=img.width, height=img.height,
            model_id=self.spec.model, seed=job["seed"], prompt=job["prompt"],
        )
