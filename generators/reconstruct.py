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
from .output_checks import (NON_FINITE, mean_squared_errors, problem_flags, problem_message, problems_of,
                            psnr, psnr_of_mse)

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
        (device time, to uint8 on the host) and of the pairs' encoding (summed over threads).

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

        Stacking the crops before the model and making the images after it run beside another chunk's model
        work; the model's seconds go to model_s."""
        import numpy as np
        import torch
        from PIL import Image

        x8 = torch.from_numpy(np.stack([np.asarray(c).transpose(2, 0, 1) for _, c, _, _ in batch]))
        if self.device == "cuda":  # uint8 through pinned memory: a quarter of the bytes, copied asynchronously
            x8 = x8.pin_memory()
        pair_ids = [self._pair_id(row) for row, _, _, _ in batch]
        seeds = [seed for _, _, _, seed in batch]
        arrays, problems, psnrs, upcast, tile, seconds = self._run_model(x8, seeds)
        if model_s is not None:
            model_s.append(seconds)
        common = {"batch": pair_ids, "tiled": tile, "oom_splits": splits, "latent": self.latent_mode(),
                  "dtype": str(self.dtype).removeprefix("torch."), "upcast": upcast, "device": self.device,
                  "threads": self.threads, **versions()}
        return [(None, {"problem": p, "error": problem_message(p, self.spec.model, upcast is not None)}) if p
                else (Image.fromarray(a), {"seed": s, "psnr": q, **common})
                for a, s, p, q in zip(arrays, seeds, problems, psnrs)]

    def _run_model(self, x8, seeds: list[int]):
        """(uint8 images N,H,W,3 on the host, problems, PSNRs, upcast reason, tiled, model seconds).

        Under the worker's lock a batch is only queued on the device; it is awaited outside the lock, so the
        other chunk in flight queues its next batch meanwhile and the GPU does not wait on the host."""
        import torch

        tile = max(x8.shape[-2:]) > min(self.cfg.tile_above, self.ae.sample_size)
        with self._model_lock:
            wait = self._queue(self.ae, x8, seeds, tile)
        (y8, flags, mse), seconds = wait()
        problems, upcast = problems_of(flags.tolist()), self.ae.upcast
        if NON_FINITE in problems and self.ae.model.dtype != torch.float32:  # a float16 overflow: again in float32
            with self._model_lock:
                wait = self._queue(self.float32_model(), x8, seeds, tile)
            (y8, flags, mse), more = wait()
            problems, upcast, seconds = problems_of(flags.tolist()), NON_FINITE, seconds + more
        return y8.numpy(), problems, [psnr_of_mse(m) for m in mse.tolist()], upcast, tile, seconds

    def _queue(self, ae: ae_mod.LoadedAutoencoder, x8, seeds: list[int], tile: bool):
        """Queue a batch where the model runs: the reconstruction, its checks, its PSNR and its uint8 form, then
        their copy back. Returns wait() -> ((uint8 N,H,W,3, flags N,2, MSE N) on the host, model seconds)."""
        import torch

        t = time.perf_counter()
        cuda = self.device == "cuda"
        if cuda:
            began = torch.cuda.Event(enable_timing=True)
            began.record()
        x8 = x8.to(self.device, non_blocking=True)
        x = x8.float() / 127.5 - 1
        y = ae_mod.reconstruct(ae, x, seeds, self.cfg.latent, tile=tile)
        flags = problem_flags((y + 1) / 2, (x + 1) / 2)
        y8 = ((y.nan_to_num(0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        out = (y8.permute(0, 2, 3, 1).contiguous(), flags, mean_squared_errors(x8, y8))
        if not cuda:
            seconds = time.perf_counter() - t
            return lambda: (out, seconds)
        host = tuple(torch.empty(o.shape, dtype=o.dtype, pin_memory=True).copy_(o, non_blocking=True) for o in out)
        ended = torch.cuda.Event(enable_timing=True)
        ended.record()

        def wait():
            ended.synchronize()
            return host, began.elapsed_time(ended) / 1000  # device time: batches of both chunks never overlap

        return wait

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
