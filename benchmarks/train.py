#!/usr/bin/env python
"""Training benchmark (pixel branch, CPU).

1. Loader: paired samples/s from the pixel shards through aig's stream (tar read, pairing, shuffle buffer,
   PNG decode, paired augmentation, tensors; in-process, loader workers 0) against a plain loop that decodes
   the same images from loose PNG files (extracted beforehand) and applies the same augmentation and tensor
   conversion. Same run, interleaved, best of --repeats. Target: >= 0.9x.
2. Training: steps/s of the default small model (aig_tinycnn, 16 crop pairs of 64 px = 32 images per step)
   end to end from the shards, and on a fixed in-memory batch (model only).

    python benchmarks/train.py -d aig-data/default [--write-results]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def loose_copy(shards: list[str], folder: Path) -> list[tuple[Path, Path, str]]:
    """Extract each pair's two PNGs to loose files; returns (real, fake, pair_id) in shard order."""
    pairs: dict[str, dict] = {}
    for s in shards:
        with tarfile.open(s) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".png"):
                    p = folder / m.name
                    p.write_bytes(tf.extractfile(m).read())
                    key = m.name[:-4]
                    pid, kind = key.rsplit("-", 1)
                    pairs.setdefault(pid, {})[kind] = p
    return [(d["real"], d["recon"], pid) for pid, d in sorted(pairs.items()) if {"real", "recon"} <= set(d)]


def plain_loop(files, recipe, n: int, crops: int, batch: int, mean, std) -> float:
    """Decode loose files and augment them identically, batching like the stream; returns pairs/s."""
    from PIL import Image

    from aig.training.augment import pair_crops
    from aig.training.pixel_stream import to_tensor

    rng = random.Random(0)
    t = time.perf_counter()
    buf, done = [], 0
    for real_p, fake_p, pid in itertools.islice(itertools.cycle(files), n):
        real, fake = Image.open(real_p).convert("RGB"), Image.open(fake_p).convert("RGB")
        for r, f, _ in pair_crops(real, fake, rng, recipe, crops):
            buf += [r, f]
            if len(buf) == 2 * batch:
                to_tensor(buf, mean, std)
                buf = []
        done += 1
    return done / (time.perf_counter() - t)


def stream_loop(shards, recipe, n: int, crops: int, batch: int, mean, std) -> float:
    from aig.training.pixel_stream import StreamSpec, batches

    spec = StreamSpec(shards, recipe, mean, std, batch_size=batch, crops_per_pair=crops, shuffle_buffer=64)
    nb = n * crops // batch
    t = time.perf_counter()
    for _ in itertools.islice(batches(spec, 0, 1), nb):
        pass
    return nb * batch / crops / (time.perf_counter() - t)


def train_steps(root: Path, steps: int, threads: int) -> dict:
    import torch

    from aig.training.augment import AugmentRecipe
    from aig.training.models import create_backbone
    from aig.training.pixel_stream import StreamSpec, make_loader
    from aig.training.shards import split_shards

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_backbone("aig_tinycnn")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    bce = torch.nn.BCEWithLogitsLoss()
    spec = StreamSpec(split_shards(root, "pixel", "train"), AugmentRecipe(), [0.5] * 3, [0.5] * 3, batch_size=16,
                      crops_per_pair=8)

    def step(x, y):
        loss = bce(model(x).reshape(-1), y)
        loss.backward()
        opt.step()
        opt.zero_grad()

    it = iter(make_loader(spec, 1))
    b = next(it)
    step(b["x"], b["y"])  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        b = next(it)
        step(b["x"], b["y"])
    e2e = steps / (time.perf_counter() - t)
    del it
    t = time.perf_counter()
    for _ in range(steps):
        step(b["x"], b["y"])
    model_only = steps / (time.perf_counter() - t)
    return {"end_to_end_steps_per_s": e2e, "model_only_steps_per_s": model_only, "images_per_step": 32,
            "threads": threads}


STEP_RATE_H200 = 220.0  # img/s: DINOv2-L/14 + LoRA rank 8, 336 px crops, one H200 (RESULTS.md, GPU training)


def synthetic_pairs(root: Path, n: int, side: int) -> list[str]:
    """n photo-like real/reconstruction pairs of side x side PNGs, written as pixel pair shards."""
    import io

    import numpy as np
    from PIL import Image

    from aig.pipeline.chunks import sample_outcome, write_chunk
    from aig.pipeline.config import ShardConfig

    rng = np.random.default_rng(0)
    outcomes = []
    for i in range(n):
        base = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((side, side), Image.BICUBIC)
        arr = np.clip(np.asarray(base, np.int16) + rng.integers(-12, 13, (side, side, 3)), 0, 255).astype(np.uint8)
        for label, img in (("real", arr), ("fake", (arr // 2) * 2)):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, "PNG", compress_level=1)
            key = f"p{i:05d}-{'real' if label == 'real' else 'recon'}"
            outcomes.append(sample_outcome(key, buf.getvalue(), "png", run_id="bench", stage="reconstruct",
                                           task="pixel", split="train", label=label, pair_id=f"p{i:05d}",
                                           source_id=f"p{i:05d}", group_id=f"p{i:05d}", width=side, height=side))
    stats = write_chunk(root, "pixel-bench", 0, outcomes, ShardConfig(samples_per_shard=10_000), "reconstruct", "bench")
    return [str(root / s["path"]) for s in stats["shards"]]


def loader_at_336(pairs: int, repeats: int, side: int = 512) -> dict:
    """The pixel stream at 336 px crops (the DINOv2-L/14 setting), one process: images/s and the CPU workers
    it takes to feed an H200 at STEP_RATE_H200 (loader workers scale by processes, one CPU each)."""
    import math

    from aig.training.augment import AugmentRecipe

    out = {"side": side, "pairs": pairs, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        shards = synthetic_pairs(Path(tmp), pairs, side)
        for crops in (4, 1):
            best = None
            for _ in range(repeats):
                cpu0 = time.process_time()
                rate = stream_loop(shards, AugmentRecipe(crop_size=336), pairs, crops, 16, [0.5] * 3, [0.5] * 3)
                images = pairs * crops // 16 * 16 * 2
                per_cpu_s = images / (time.process_time() - cpu0)
                if best is None or per_cpu_s > best[1]:
                    best = (rate, per_cpu_s)
            img_s = best[0] * 2 * crops
            out["rows"].append({"crops_per_pair": crops, "pairs_per_s": best[0], "images_per_s": img_s,
                                "images_per_cpu_s": best[1], "workers_for_h200": math.ceil(STEP_RATE_H200 / best[1])})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-d", "--dataset", type=Path, default=Path("aig-data/default"))
    ap.add_argument("--pairs", type=int, default=60, help="pairs decoded per loader timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--loader-336-only", action="store_true", help="only the 336 px loader rate (synthetic pairs)")
    ap.add_argument("--loader-336-pairs", type=int, default=48, help="pairs per 336 px loader timing")
    a = ap.parse_args()
    load0 = os.getloadavg()[0]
    l336 = loader_at_336(a.loader_336_pairs, a.repeats)
    text = render_336(l336, load0)
    print(text)
    if a.write_results:
        from results import write_section

        write_section("train-loader-336", "train.py", "Training input at 336 px crops",
                      f"The pixel loader's images/s at 336 px crops in one process, and the CPU loader workers it "
                      f"takes to keep up with the DINOv2-L/14 LoRA step rate on an H200 ({STEP_RATE_H200:.0f} img/s).",
                      text)
    if a.loader_336_only:
        return 0
    from aig.training.augment import AugmentRecipe
    from aig.training.shards import split_shards

    shards = split_shards(a.dataset, "pixel", "train")
    if not shards:
        print(f"no pixel train shards in {a.dataset}: run `make demo` first", file=sys.stderr)
        return 2
    recipe, mean, std, crops, batch = AugmentRecipe(), [0.5] * 3, [0.5] * 3, 4, 16
    with tempfile.TemporaryDirectory() as tmp:
        files = loose_copy(shards, Path(tmp))
        res = {"plain": [], "aig": []}
        for _ in range(a.repeats):
            res["plain"].append(plain_loop(files, recipe, a.pairs, crops, batch, mean, std))
            res["aig"].append(stream_loop(shards, recipe, a.pairs, crops, batch, mean, std))
    loader = {"pairs": a.pairs, "plain_pairs_per_s": max(res["plain"]), "aig_pairs_per_s": max(res["aig"]),
              "ratio": max(res["aig"]) / max(res["plain"]), "all": res}
    train = train_steps(a.dataset, a.steps, a.threads)
    out = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
           "load_average": os.getloadavg(), "machine": platform.machine(), "loader": loader, "train": train}
    print(json.dumps(out, indent=1))
    if a.write_results:
        write_results(out)
    return 0


def render_336(r: dict, load0: float) -> str:
    from results import machine_facts

    lines = [f"Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC; load average (1 min) before / after "
             f"{load0:.2f} / {os.getloadavg()[0]:.2f}.", ""] + [f"- {f}" for f in machine_facts(("aig", "pillow", "torch"))]
    lines += ["", f"{r['pairs']} synthetic {r['side']} px PNG pairs (real + reconstruction) in one pixel shard; aig's "
              "stream in one process (tar read, pairing, shuffle buffer, PNG decode, paired augmentation with the "
              "default recipe, tensors), 16 crop pairs per batch; best of the repeats.", "",
              "Workers are counted from the CPU time (images per CPU-second of the process; a shared machine "
              "stretches wall time, not CPU time), one busy CPU per loader worker.", "",
              "| crops per decoded pair | pairs/s (wall) | images/s (wall, 336 px crops) | images per CPU-second | "
              f"CPU loader workers for {STEP_RATE_H200:.0f} img/s |", "|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        lines.append(f"| {row['crops_per_pair']} | {row['pairs_per_s']:.1f} | {row['images_per_s']:.1f} | "
                     f"{row['images_per_cpu_s']:.1f} | {row['workers_for_h200']} |")
    return "\n".join(lines) + "\n"


def write_results(r: dict) -> None:
    from results import write_section

    L, T = r["loader"], r["train"]
    body = (f"`python benchmarks/train.py --write-results` ({r['when']}, {r['cpus']} CPUs, load average "
            f"{r['load_average'][0]:.1f} at the end: the machine was shared)\n\n"
            "| measure | value |\n|---|---|\n"
            f"| plain loop (loose PNG files, same decode + paired augmentation) | {L['plain_pairs_per_s']:.1f} pairs/s |\n"
            f"| aig stream from the shards (in-process) | {L['aig_pairs_per_s']:.1f} pairs/s |\n"
            f"| **ratio aig / plain** (target >= 0.9) | **{L['ratio']:.2f}x** |\n"
            f"| training, aig_tinycnn, 32 images of 64 px per step, end to end (1 loader worker) | "
            f"{T['end_to_end_steps_per_s']:.2f} steps/s |\n"
            f"| training, model only (fixed batch, {T['threads']} threads) | {T['model_only_steps_per_s']:.2f} steps/s |\n"
            f"\nBest of {len(L['all']['plain'])} interleaved repeats of {L['pairs']} pairs each (4 crops of 64 px per pair).")
    write_section("train", "train.py", "Training benchmark (pixel branch)",
                  "The loader against a plain loop over the same pairs, and training steps/s. Re-run with "
                  "`python benchmarks/train.py --write-results`.", body)


if __name__ == "__main__":
    sys.exit(main())
