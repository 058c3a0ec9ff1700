"""Fault injection with more repetitions than the test suite: the scenarios of tests/faults.py.

    python scripts/faults.py                       # 30 kill -9 rounds, 3 worker kills, disk full, corrupt inputs
    python scripts/faults.py --runs 100 --seed 3 --only kill
    python scripts/faults.py --json faults.json    # also write every round's record

Exits 1 on the first scenario whose result differs from a clean run (the assertion says how).
The disk-full scenario mounts a tmpfs (root only) and is skipped with the reason otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from conftest import sql_rows  # noqa: E402
from corpus import _truncate, make_images  # noqa: E402
from faults import (clean_run, corrupt_mid_run, dataset_bytes, disk_full_then_resume, ingest_args,  # noqa: E402
                    kill_ray_worker, mount_tmpfs, random_kill_runs, unmount)


def kill_rounds(work: Path, runs: int, seed: int) -> dict:
    folder = work / "in"
    make_images(folder, 60, size=(192, 160))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    records = random_kill_runs(folder, work / "kill", runs, seed)
    return {"rounds": len(records), "records": records}


def worker_kills(work: Path, repeats: int) -> dict:
    folder = work / "in-worker"
    make_images(folder, 40, size=(512, 512))
    args = ingest_args(folder, "ray", per_chunk=5, size=256)
    clean, _ = clean_run(args, work / "clean-worker")
    records = []
    for i in range(repeats):
        rec = kill_ray_worker(args, work / f"worker-{i}", clean)
        print(f"worker kill {i}: killed {rec['killed']['cmdline']} (pid {rec['killed']['pid']}) -> completed, identical")
        records.append(rec["killed"])
        shutil.rmtree(work / f"worker-{i}")
    return {"records": records}


def disk_full(work: Path) -> dict:
    folder = work / "in"
    if not folder.is_dir():
        make_images(folder, 60, size=(192, 160))
    args = ingest_args(folder, "ray", size=160)
    args[args.index("--policy") + 1] = "native"
    args[args.index("--size") + 1] = 2048  # native pixels: no crop
    clean, _ = clean_run(args, work / "clean-disk")
    disk = work / "disk"
    why = mount_tmpfs(disk, 24 * 2**20)
    if why:
        print(f"disk full: skipped: {why}")
        return {"skipped": why}
    try:
        rec = disk_full_then_resume(args, disk, clean, dataset_bytes(work / "clean-disk"))
    finally:
        unmount(disk)
    print(f"disk full: exit {rec['first_rc']} after {rec['done_before_full']} chunks: {rec['error']}")
    print("disk full: resumed after the filler was deleted -> identical")
    return rec


def corrupt(work: Path) -> dict:
    folder = work / "in-large"
    paths = make_images(folder, 400, size=(96, 96))
    (folder / "img_000199_truncated.jpg").write_bytes(_truncate(paths[199].read_bytes(), "JPEG"))
    out = work / "large"
    rec = corrupt_mid_run(ingest_args(folder, "ray", per_chunk=25, size=64), out, paths[390], b"\xff\xd8\xff garbage")
    failures = sql_rows(out, "select input_path, reason from failures order by 1")
    n = sql_rows(out, "select count(*) as n from samples")[0]["n"]
    print(f"corrupt inputs: {n} samples, failures {[(Path(f['input_path']).name, f['reason']) for f in failures]}")
    assert n == 399 and [f["reason"] for f in failures] == ["truncated", "changed"], failures
    return {"samples": n, "failures": failures, "done_when_changed": rec["done_when_changed"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30, help="kill -9 rounds (default 30)")
    ap.add_argument("--worker-kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=("kill", "worker", "disk", "corrupt"), action="append")
    ap.add_argument("--workdir", type=Path, help="keep the work here (default: a temporary folder, removed)")
    ap.add_argument("--json", type=Path, help="write all records here")
    args = ap.parse_args(argv)
    only = set(args.only or ("kill", "worker", "disk", "corrupt"))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="aig-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict = {}
    try:
        if "kill" in only:
            results["kill"] = kill_rounds(work, args.runs, args.seed)
        if "worker" in only:
            results["worker"] = worker_kills(work, args.worker_kills)
        if "disk" in only:
            results["disk"] = disk_full(work)
        if "corrupt" in only:
            results["corrupt"] = corrupt(work)
    finally:
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"all scenarios passed in {time.perf_counter() - t0:.0f} s: {', '.join(sorted(results))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
