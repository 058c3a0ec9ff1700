"""The reconstruct stage: real/reconstruction pairs for the pixel task, one actor per loaded autoencoder."""

from __future__ import annotations

import hashlib
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pipeline.chunks import Outcome, failure_outcome, sample_outcome, write_chunk
from pipeline.config import ReconstructConfig, ShardConfig
from pipeline.decode import encode_image
from pipeline.devices import torch_setup, versions
from pipeline.storage import read_range

from . import autoencoder as ae_mod
from .batching import run_in_batches
from .naming import generator_name

STAGE = "reconstruct"
KIND = "autoencoder"


@dataclass(frozen=True)
class AutoencoderSpec:
    name: str
    model: str
    subfolder: str | None = None
    revision: str | None = None

    @classmethod
    def parse(cls, spec: str | dict) -> AutoencoderSpec:
        """'MODEL', 'MODEL:SUBFOLDER', or a table {model, subfolder, revision, name}."""
        if isinstance(spec, str):
            model, _, subfolder = spec.partition(":")
            spec = {"model": model, "subfolder": subfolder or None}
        model = spec["model"]
        return cls(spec.get("name") or generator_name(model, spec.get("subfolder")), model,
                   spec.get("subfolder"), spec.get("revision"))

    def group(self) -> str:
        return f"pixel-{self.name}"


def pair_seed(seed: str, pair_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()[:8], "big") >> 1


def read_member(root: str | Path, shard: str, offset: int, size: int) -> bytes:
    return read_range(root, shard, offset, size)  # a local folder or a URL


class ReconstructWorker:
    """Loads one autoencoder once (per Ray actor) and turns chunks of real samples into pair shards."""

    kind = KIND
    stage = STAGE

    def __init__(self, spec: AutoencoderSpec, cfg: ReconstructConfig, threads: int = 1):
        self.device, self.dtype, self.threads = torch_setup(cfg.dtype, threads)
        self.spec, self.cfg = spec, cfg
        self._load(spec)

    def _load(self, spec: AutoencoderSpec) -> None:
        """The model, its downscale factor and the provenance every sample shares."""
        self.ae = ae_mod.load_autoencoder(spec.model, spec.subfolder, spec.revision, self.device, self.dtype)
        self.factor = self.ae.factor
        self.base = ae_mod.describe(self.ae, spec.model, spec.subfolder, spec.revision)

    def latent_mode(self) -> str:
        return self.cfg.latent if self.ae.has_posterior else "deterministic"

    def run_chunk(self, root: str, chunk: int, real_rows: list[dict], shard_cfg: ShardConfig, run_id: str,
                  group: str | None = None) -> dict:
        start = time.perf_counter()
        outcomes = self.reconstruct_rows(root, real_rows, run_id)
        stats = write_chunk(root, group or self.spec.group(), chunk, outcomes, shard_cfg, self.stage, run_id)
        stats["seconds"] = time.perf_counter() - start
        return stats

    def reconstruct_rows(self, root: str | Path, real_rows: list[dict], run_id: str) -> list[Outcome]:
        from PIL import Image

        items, outcomes = [], []
        for row in real_rows:
            img = Image.open(io.BytesIO(read_member(root, row["shard"], row["offset_data"], row["size"]))).convert("RGB")
            box = ae_mod.crop_to_multiple(img.width, img.height, self.factor)
            if box[2] <= box[0] or box[3] <= box[1]:
                outcomes.append(failure_outcome(row["input_path"], run_id, self.stage, self.spec.group(), row["chunk"],
                                                "too_small", f"{img.width}x{img.height} is below the factor {self.factor}"))
                continue
            items.append((row, img.crop(box), box, pair_seed(self.cfg.seed, self._pair_id(row))))
        done = run_in_batches(items, self.cfg.batch_size, key=lambda it: it[1].size, fn=self._batch)
        # PNG encoding dominates once the model runs on a GPU: spread it over threads there (zlib drops the GIL).
        with ThreadPoolExecutor(max_workers=8 if self.device == "cuda" else 1) as pool:
            for pair in pool.map(lambda it: self._pair(it[0][0], it[0][1], it[0][2], *it[1], run_id), zip(items, done)):
                outcomes += pair
        return outcomes

    def _batch(self, batch: list, splits: int) -> list:
        import numpy as np
        import torch
        from PIL import Image

        x = torch.from_numpy(np.stack([np.asarray(c, np.float32).transpose(2, 0, 1) for _, c, _, _ in batch]))
        x = x / 127.5 - 1
        pair_ids = [self._pair_id(row) for row, _, _, _ in batch]
        seeds = [seed for _, _, _, seed in batch]
        tile = max(x.shape[-2:]) > min(self.cfg.tile_above, self.ae.sample_size)
        y = ae_mod.reconstruct(self.ae, x, seeds, self.cfg.latent, tile=tile)
        arrays = ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        common = {"batch": pair_ids, "tiled": tile, "oom_splits": splits, "latent": self.latent_mode(),
                  "dtype": str(self.dtype).removeprefix("torch."), "device": self.device, "threads": self.threads,
                  **versions()}
        return [(Image.fromarray(a), {"seed": s, **common}) for a, s in zip(arrays, seeds)]

    def _pair_id(self, row: dict) -> str:
        return f"{row['source_id']}-{self.spec.name}"

    def _pair(self, row: dict, crop, box, recon, meta: dict, run_id: str) -> list[Outcome]:
        pair_id = self._pair_id(row)
        fmt, quality = "png", None
        if self.cfg.pair_format == "jpeg-matched" and row.get("source_quality"):
            fmt, quality = "jpeg", int(row["source_quality"])
        common = {"pair_id": pair_id, "source_key": row["key"], "crop": list(box), "pair_format": self.cfg.pair_format,
                  "jpeg_quality": quality}
        out = []
        for label, img, extra in (("real", crop, {"kind": "real-crop"}),
                                  ("fake", recon, {**self.base, "kind": self.kind, **meta})):
            data, ext = encode_image(img, fmt, quality or 95)
            key = f"{pair_id}-{'real' if label == 'real' else 'recon'}"
            prov = {**common, **extra}
            out.append(sample_outcome(
                key=key, data=data, ext=ext, run_id=run_id, stage=self.stage, task="pixel", split=row["split"],
                label=label, source_id=row["source_id"], group_id=row["group_id"], pair_id=pair_id,
                generator=self.spec.name, generator_kind=self.kind if label == "fake" else "real",
                provenance=prov, input_path=row["input_path"], origin=row["origin"], caption=row["caption"],
                width=img.width, height=img.height, model_id=self.spec.model if label == "fake" else None,
                seed=meta["seed"] if label == "fake" and meta["latent"] in ("sample", "diffusion") else None,
            ))
        return out


def provenance_of(row: dict) -> dict:
    return json.loads(row["provenance"]) if row.get("provenance") else {}
