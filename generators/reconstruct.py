"""The reconstruct stage: real/reconstruction pairs for the pixel task, one actor per loaded autoencoder."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aig.pipeline.chunks import Outcome, failure_outcome, sample_outcome, write_chunk
from aig.pipeline.config import ReconstructConfig, ShardConfig
from aig.pipeline.decode import encode_image
from aig.pipeline.devices import torch_setup, versions
from aig.pipeline.shards import read_member

from . import autoencoder as ae_mod
from .batching import run_in_batches
from .naming import generator_name
from .output_checks import NON_FINITE, batch_problems, batch_psnr, problem_message, psnr

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


def cpu_threads(device: str) -> int:
    """Threads for a model worker's CPU work: the node's CPUs next to a GPU; one on CPU (the model has the rest)."""
    import os

    return max(1, len(os.sched_getaffinity(0))) if device == "cuda" else 1


def pair_seed(seed: str, pair_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()[:8], "big") >> 1


class ReconstructWorker:
    """Loads one autoencoder once (per Ray actor) and turns chunks of real samples into pair shards."""

    kind = KIND
    stage = STAGE
    # On a GPU an actor takes a second chunk while one runs: it decodes and writes while the model runs the other.
    chunks_in_flight = 2

    def __init__(self, spec: AutoencoderSpec, cfg: ReconstructConfig, threads: int = 1):
        self.device, self.dtype, self.threads = torch_setup(cfg.dtype, threads)
        self.spec, self.cfg = spec, cfg
        self._model_lock = threading.Lock()  # chunks may overlap (one decoding or writing while one runs the model)
        self._load(spec)

    def _load(self, spec: AutoencoderSpec) -> None:
        """The model, its downscale factor and the provenance every sample shares."""
        self.ae = ae_mod.load_autoencoder(spec.model, spec.subfolder, spec.revision, self.device, self.dtype)
        self._ae32 = None
        self.factor = self.ae.factor
        self.base = ae_mod.describe(self.ae, spec.model, spec.subfolder, spec.revision)

    def latent_mode(self) -> str:
        return self.cfg.latent if self.ae.has_posterior else "deterministic"

    def run_chunk(self, root: str, chunk: int, real_rows: list[dict], shard_cfg: ShardConfig, run_id: str,
                  group: str | None = None) -> dict:
        start = time.perf_counter()
        timers: dict[str, float] = {}
        outcomes = self.reconstruct_rows(root, real_rows, run_id, timers)
        t = time.perf_counter()
        stats = write_chunk(root, group or self.spec.group(), chunk, outcomes, shard_cfg, self.stage, run_id)
        timers["write_chunk"] = time.perf_counter() - t
        stats.update(seconds=time.perf_counter() - start, timers=timers)
        return stats

    def reconstruct_rows(self, root: str | Path, real_rows: list[dict], run_id: str,
                         timers: dict[str, float] | None = None) -> list[Outcome]:
        """Decode the reals, run the model batch by batch, encode the pairs; `timers` gets the seconds of the model
        (under its lock, to uint8 on the host) and of the pairs' encoding (summed over threads).

        On a GPU the CPU work runs in a thread pool sized to the node's CPUs (decoding and zlib/libjpeg drop
        the GIL): reals are decoded ahead, and each batch's pairs are encoded while the GPU runs the next."""
        model_s, pair_s = [], []  # list.append is atomic: pool threads add to pair_s

        def pair(*args) -> list[Outcome]:
            t = time.perf_counter()
            out = self._pair(*args)
            pair_s.append(time.perf_counter() - t)
            return out

        with ThreadPoolExecutor(max_workers=cpu_threads(self.device)) as pool:
            decoded = pool.map(lambda row: self._real(root, row, run_id), real_rows)
            items, outcomes = [], []
            for item in decoded:
                if isinstance(item, Outcome):
                    outcomes.append(item)
                else:
                    items.append(item)

            def batch(part: list, splits: int) -> list:
                results = self._batch(part, splits, model_s)
                return [pool.submit(pair, it[0], it[1], it[2], recon, meta, run_id)
                        for it, (recon, meta) in zip(part, results)]

            for done in run_in_batches(items, self.cfg.batch_size, key=lambda it: it[1].size, fn=batch):
                outcomes += done.result()
        if timers is not None:
            timers.update({"autoencoder": sum(model_s), "encode pairs (thread-seconds)": sum(pair_s)})
        return outcomes

    def _real(self, root: str | Path, row: dict, run_id: str):
        from PIL import Image

        img = Image.open(io.BytesIO(read_member(root, row))).convert("RGB")
        box = ae_mod.crop_to_multiple(img.width, img.height, self.factor)
        if box[2] <= box[0] or box[3] <= box[1]:
            return failure_outcome(row["input_path"], run_id, self.stage, self.spec.group(), row["chunk"],
                                   "too_small", f"{img.width}x{img.height} is below the factor {self.factor}")
        return row, img.crop(box), box, pair_seed(self.cfg.seed, self._pair_id(row))

    def float32_model(self) -> ae_mod.LoadedAutoencoder:
        """The same autoencoder loaded in float32 (once), for batches whose float16 output is not finite."""
        import torch

        if self._ae32 is None:
            spec = self.spec
            self._ae32 = ae_mod.load_autoencoder(spec.model, spec.subfolder, spec.revision, self.device, torch.float32)
        return self._ae32

    def _batch(self, batch: list, splits: int, model_s: list | None = None) -> list:
        """One (image, meta) per item; image None and meta['problem'] set for an output that cannot be stored.

        Only the model's part holds the worker's lock (its seconds go to model_s): stacking the crops before it
        and making the images after it run beside another chunk's model work."""
        import numpy as np
        import torch
        from PIL import Image

        x8 = torch.from_numpy(np.stack([np.asarray(c).transpose(2, 0, 1) for _, c, _, _ in batch]))
        if self.device == "cuda":  # uint8 through pinned memory: a quarter of the bytes, copied asynchronously
            x8 = x8.pin_memory()
        pair_ids = [self._pair_id(row) for row, _, _, _ in batch]
        seeds = [seed for _, _, _, seed in batch]
        with self._model_lock:
            t = time.perf_counter()
            arrays, problems, psnrs, upcast, tile = self._run_model(x8, seeds)
            if model_s is not None:
                model_s.append(time.perf_counter() - t)
        common = {"batch": pair_ids, "tiled": tile, "oom_splits": splits, "latent": self.latent_mode(),
                  "dtype": str(self.dtype).removeprefix("torch."), "upcast": upcast, "device": self.device,
                  "threads": self.threads, **versions()}
        return [(None, {"problem": p, "error": problem_message(p, self.spec.model, upcast is not None)}) if p
                else (Image.fromarray(a), {"seed": s, "psnr": q, **common})
                for a, s, p, q in zip(arrays, seeds, problems, psnrs)]

    def _run_model(self, x8, seeds: list[int]):
        """(uint8 images N,H,W,3 on the host, problems, PSNRs, upcast reason, tiled): the checks, the PSNR and the
        conversion to bytes run where the model ran, so only uint8 images come back."""
        import torch

        x8 = x8.to(self.device, non_blocking=True)
        x = x8.float() / 127.5 - 1
        tile = max(x.shape[-2:]) > min(self.cfg.tile_above, self.ae.sample_size)
        ae, upcast = self.ae, self.ae.upcast
        y = ae_mod.reconstruct(ae, x, seeds, self.cfg.latent, tile=tile)
        problems = batch_problems((y + 1) / 2, (x + 1) / 2)
        if NON_FINITE in problems and ae.model.dtype != torch.float32:  # a float16 overflow: the batch again in float32
            ae, upcast = self.float32_model(), NON_FINITE
            y = ae_mod.reconstruct(ae, x, seeds, self.cfg.latent, tile=tile)
            problems = batch_problems((y + 1) / 2, (x + 1) / 2)
        y8 = ((y.nan_to_num(0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        psnrs = batch_psnr(x8, y8)
        return y8.permute(0, 2, 3, 1).contiguous().cpu().numpy(), problems, psnrs, upcast, tile

    def _pair_id(self, row: dict) -> str:
        return f"{row['source_id']}-{self.spec.name}"

    def _pair(self, row: dict, crop, box, recon, meta: dict, run_id: str) -> list[Outcome]:
        pair_id = self._pair_id(row)
        if recon is None:  # non-finite or degenerate output: the pair is not stored
            return [failure_outcome(row["input_path"], run_id, self.stage, self.spec.group(), row["chunk"],
                                    meta["problem"], meta["error"])]
        meta = dict(meta)
        recon_psnr = meta.pop("psnr", None)  # measured with the batch where the model ran, else here
        recon_psnr = psnr(crop, recon) if recon_psnr is None else recon_psnr
        fmt, quality = "png", None
        if self.cfg.pair_format in ("auto", "jpeg-matched") and row.get("source_quality"):
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
                recon_psnr=recon_psnr if label == "fake" else None,
            ))
        return out


def provenance_of(row: dict) -> dict:
    return json.loads(row["provenance"]) if row.get("provenance") else {}
