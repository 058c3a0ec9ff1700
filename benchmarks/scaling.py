#!/usr/bin/env python
"""Scaling benchmark: `aig build-data --stages ingest` on 1k, 4k and 16k images, time and peak memory.

Small inputs keep the 16k run short on 2 CPUs: 128x128 JPEGs (quality 90, `tests/corpus.make_images`), kept
at their size (`--policy cap --size 512` leaves them as they are) and stored as PNG, 250 inputs a chunk, Ray with
2 workers. Each N is one fresh `aig build-data` subprocess (CLI, end to end); peak RSS is summed over its
whole process tree (driver, Ray's gcs/raylet/agents, workers) every 0.1 s with psutil, and the driver's own
peak is listed too. Time linear = seconds per 1,000 images stays the same; memory flat = the peak does not
grow with N.

    python benchmarks/scaling.py                   # ~3-5 min on 2 CPUs (images are cached in --workdir)
    python benchmarks/scaling.py --write-results   # ... and rewrite its section of RESULTS.md
    python benchmarks/scaling.py --ns 500 2000     # other sizes
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO), str(REPO / "tests")]

from results import machine_facts, run_header, write_section  # noqa: E402

NS = (1000, 4000, 16000)
SIDE = 128
PER_CHUNK = 250
AIG = str(Path(sys.executable).with_name("aig"))


def images(workdir: Path, n: int) -> Path:
    """n distinct 128 px JPEGs in their own folder (hard links into one cached pool)."""
    from corpus import make_images

    pool = workdir / f"pool-{SIDE}"
    have = len(list(pool.glob("*.jpg"))) if pool.is_dir() else 0
    if have < n:
        shutil.rmtree(pool, ignore_errors=True)
        make_images(pool, n, size=(SIDE, SIDE), seed=42)
    folder = workdir / f"in-{n}"
    if not folder.is_dir() or len(list(folder.glob("*.jpg"))) != n:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for p in sorted(pool.glob("*.jpg"))[:n]:
            os.link(p, folder / p.name)
    return folder


def run_monitored(cmd: list[str], log: Path) -> dict:
    """Run cmd; sample the RSS of its process tree every 0.1 s. Returns seconds and peaks (MiB)."""
    import psutil

    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
    peak_tree = peak_driver = procs_at_peak = 0
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = psutil.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        while proc.poll() is None:
            try:
                tree = [proc, *proc.children(recursive=True)]
            except psutil.Error:
                tree = [proc]
            total = 0
            for p in tree:
                try:
                    rss = p.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                if p.pid == proc.pid:
                    peak_driver = max(peak_driver, rss)
            if total > peak_tree:
                peak_tree, procs_at_peak = total, len(tree)
            time.sleep(0.1)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
    return {"seconds": seconds, "tree_mib": peak_tree / 2**20, "driver_mib": peak_driver / 2**20,
            "procs": procs_at_peak}


def one(workdir: Path, n: int) -> dict:
    folder = images(workdir, n)
    out = workdir / f"ds-{n}"
    shutil.rmtree(out, ignore_errors=True)
    log = workdir / f"log-{n}.txt"
    cmd = [AIG, "build-data", "--input-dir", str(folder), "-o", str(out), "--stages", "ingest", "--policy", "cap",
           "--size", "512", "--samples-per-shard", str(PER_CHUNK), "--workers", "2"]
    r = run_monitored(cmd, log)
    text = log.read_text()
    m = re.search(r"run run-0001: ([\d.]+)s \(([\d.]+)s of it Ray start-up\)", text)
    ingested = re.search(r"ingest: (\d+) inputs -> (\d+) samples, (\d+) failures", text)
    if not m or not ingested or int(ingested.group(2)) != n:
        sys.exit(f"unexpected output for n={n}:\n{text[-2000:]}")
    r.update(n=n, build_s=float(m.group(1)), ray_start_s=float(m.group(2)),
             dataset_mib=sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20)
    r["work_s"] = r["build_s"] - r["ray_start_s"]
    shutil.rmtree(out, ignore_errors=True)
    return r


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ns", type=int, nargs="+", default=list(NS))
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "aig-bench-scaling")
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    facts = machine_facts()
    t0 = time.perf_counter()
    images(args.workdir, max(args.ns))
    results = []
    for n in sorted(args.ns):
        r = one(args.workdir, n)
        results.append(r)
        print(f"{n:>6} images: {r['seconds']:.1f} s wall ({r['work_s']:.1f} s build excl. Ray start-up "
              f"{r['ray_start_s']:.1f} s), {r['work_s'] / n * 1000:.2f} s per 1k, peak tree {r['tree_mib']:.0f} MiB, "
              f"driver {r['driver_mib']:.0f} MiB")
    small, big = results[0], results[-1]
    per_k = [r["work_s"] / r["n"] * 1000 for r in results]
    marginal = (big["work_s"] - small["work_s"]) / (big["n"] - small["n"]) * 1000 if big is not small else per_k[0]
    driver_kib = ((big["driver_mib"] - small["driver_mib"]) * 1024 / (big["n"] - small["n"])
                  if big is not small else 0.0)
    summary = (f"From {small['n']:,} to {big['n']:,} images ({big['n'] / small['n']:.0f}x): build time "
               f"{big['work_s'] / small['work_s']:.1f}x, seconds per 1,000 images {per_k[0]:.2f} -> {per_k[-1]:.2f} "
               f"(marginal {marginal:.2f}); peak RSS whole tree {big['tree_mib'] / small['tree_mib']:.2f}x, "
               f"driver {big['driver_mib'] / small['driver_mib']:.2f}x "
               f"(driver growth {driver_kib:.1f} KiB per extra input).")
    if len(results) >= 2:
        import numpy as np

        ns = np.array([r["n"] for r in results], float)
        ts = np.array([r["work_s"] for r in results])
        slope, fixed = np.polyfit(ns, ts, 1)
        worst = max(abs(t - (fixed + slope * n)) / t for n, t in zip(ns, ts))
        summary += (f" Least-squares line: build seconds = {fixed:.1f} + {slope * 1000:.2f} x thousands of images "
                    f"({1 / slope:.0f} images/s at the margin on this machine), largest deviation from it "
                    f"{worst * 100:.0f}%: time is linear in N plus a fixed cost (worker start, first-chunk "
                    "warm-up, Ray shutdown, catalog).")
    print(summary)
    if not args.write_results:
        return
    lines = run_header("python benchmarks/scaling.py --write-results", started, (time.perf_counter() - t0) / 60, facts)
    lines += ["", f"{SIDE}x{SIDE} JPEGs (quality 90) kept at their size, stored as PNG, {PER_CHUNK} inputs a chunk, "
              "Ray with 2 workers; one fresh `aig build-data --stages ingest` subprocess per N. Build = the run's "
              "own seconds minus Ray start-up (both printed by aig); wall = the whole process. Peak RSS is sampled "
              "every 0.1 s over the whole process tree (driver, Ray's gcs/raylet/agents and workers).", "",
              "| images | wall (s) | build excl. Ray start (s) | Ray start (s) | s per 1k images | images/s | "
              "peak RSS tree (MiB) | peak RSS driver (MiB) | processes | dataset (MiB) |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['n']:,} | {r['seconds']:.1f} | {r['work_s']:.1f} | {r['ray_start_s']:.1f} | "
              f"{r['work_s'] / r['n'] * 1000:.2f} | {r['n'] / r['work_s']:.0f} | {r['tree_mib']:.0f} | "
              f"{r['driver_mib']:.0f} | {r['procs']} | {r['dataset_mib']:.1f} |" for r in results]
    lines += ["", summary]
    write_section("scaling", "scaling.py", "Scaling benchmark",
                  "The issue's target: ingest of 1k, 4k and 16k images, time linear and peak memory flat. "
                  "Re-run with `python benchmarks/scaling.py --write-results`.", "\n".join(lines))


if __name__ == "__main__":
    main()
