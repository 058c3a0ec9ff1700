"""`aig build-data`: plan a run (or resume an unfinished one), run its chunks, publish the catalog."""

from __future__ import annotations

import fcntl
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from manifests.catalog import refresh_catalog
from manifests.schema import RUNS, parquet_bytes, table_dir, to_table

from . import info, ingest, layout, provenance
from .config import BuildConfig
from .plan import hash_inputs, make_plan
from .runner import make_executor
from .shards import atomic_write
from .sources import enumerate_inputs


class BuildError(RuntimeError):
    """The build cannot start or continue; the message says why and what to do."""


@dataclass
class BuildReport:
    root: Path
    run_id: str
    resumed: bool
    inputs: int
    chunks_run: int
    samples: int
    failures: int
    seconds: float
    ray_startup_s: float


def log(msg: str) -> None:
    print(f"[aig] {msg}", file=sys.stderr, flush=True)


@contextmanager
def dataset_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / layout.LOCK_FILE, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildError(f"another `aig build-data` is writing '{root}'; wait for it to finish") from None
        yield


def clear_dataset(root: Path) -> None:
    if not root.exists():
        return
    if any(p.name != layout.LOCK_FILE for p in root.iterdir()) and not layout.is_dataset(root):
        raise BuildError(f"'{root}' is not an aig dataset folder; refusing to delete it with --overwrite")
    for child in root.iterdir():
        if child.name == layout.LOCK_FILE:
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def read_table(root: Path, table: str, columns: list[str] | None = None) -> list[dict]:
    import pyarrow.parquet as pq

    files = sorted(table_dir(root, table).glob("*.parquet"))
    rows: list[dict] = []
    for f in files:
        rows += pq.read_table(f, columns=columns).to_pylist()
    return rows


def write_run(root: Path, row: dict) -> None:
    atomic_write(table_dir(root, "runs") / f"{row['run_id']}.parquet", parquet_bytes(to_table(RUNS, [row])))


def _next_chunk(root: Path, run_ids: set[str]) -> int:
    """First free chunk number; a plan whose run row was never written (killed in between) does not count."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    last = -1
    for run_id in run_ids:
        col = pq.read_table(layout.plan_path(root, run_id), columns=["chunk"])["chunk"]
        if len(col):
            last = max(last, pc.max(col).as_py())
    return last + 1


def _new_run(root: Path, cfg: BuildConfig, command: str, runs: list[dict]) -> tuple[dict, list[dict]]:
    run_id = f"run-{len(runs) + 1:04d}"
    items = enumerate_inputs(cfg.inputs)
    known = {r["input_path"] for r in read_table(root, "samples", ["input_path"])}
    known |= {r["input_path"] for r in read_table(root, "failures", ["input_path"])}
    fresh = [i for i in items if i.input_path not in known]
    if known and len(fresh) < len(items):
        log(f"{len(items) - len(fresh)} inputs are already in the dataset; appending {len(fresh)} new ones")
    existing = {r["source_sha256"]: r["input_path"] for r in read_table(root, "samples", ["source_sha256", "input_path"])}
    t0 = time.perf_counter()
    hashes = hash_inputs(fresh)
    log(f"planned {len(fresh)} inputs in {time.perf_counter() - t0:.1f}s")
    plan = make_plan(fresh, hashes, existing, cfg.split, cfg.shards.samples_per_shard,
                     _next_chunk(root, {r["run_id"] for r in runs}))
    atomic_write(layout.plan_path(root, run_id), parquet_bytes(_plan_table(plan)))  # the plan first, then its run
    run = {
        "run_id": run_id, "command": command, "status": "running", "started_at": provenance.now(),
        "config_hash": cfg.content_hash(), "config": json.dumps(cfg.to_dict(), sort_keys=True),
        "versions": json.dumps(provenance.library_versions(), sort_keys=True), "git_commit": provenance.git_commit(),
        "host": provenance.host(), "n_inputs": len(plan), "resumed": 0,
    }
    write_run(root, run)
    return run, plan


def _plan_table(plan: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(plan) if plan else pa.table({"chunk": pa.array([], pa.int64())})


def _load_plan(root: Path, run_id: str) -> list[dict]:
    import pyarrow.parquet as pq

    path = layout.plan_path(root, run_id)
    if not path.is_file():
        return []
    return [r for r in pq.read_table(path).to_pylist() if "input_path" in r]


def _run_chunks(root: Path, cfg: BuildConfig, run_id: str, plan: list[dict]) -> tuple[int, float]:
    from tqdm import tqdm

    done = set(layout.done_markers(root))
    by_chunk: dict[int, list[dict]] = {}
    for row in plan:
        by_chunk.setdefault(row["chunk"], []).append(row)
    todo = sorted(c for c in by_chunk if layout.chunk_name(ingest.GROUP, c) not in done)
    for tmp in layout.temp_files(root):
        tmp.unlink(missing_ok=True)  # leftovers of a killed run; never visible under a final name
    if not todo:
        return 0, 0.0
    executor = make_executor(cfg.runner)
    if executor.startup_s:
        log(f"ray started in {executor.startup_s:.1f}s ({executor.address}, {executor.workers} CPUs)")
    calls = [(str(root), c, by_chunk[c], cfg.ingest, cfg.shards, run_id, cfg.runner.max_retries) for c in todo]
    failed = 0
    bar = tqdm(total=sum(len(by_chunk[c]) for c in todo), unit="img", desc="ingest", mininterval=1.0,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for i, result in executor.map(ingest.run_chunk, calls):
            if isinstance(result, BaseException):
                log(f"chunk {todo[i]} crashed ({type(result).__name__}); processing its inputs one by one")
                result = _isolate_chunk(executor, root, calls[i])
            failed += result["failures"]
            bar.update(result["inputs"])
            bar.set_postfix(failed=failed, refresh=False)
    finally:
        bar.close()
        executor.close()
    return len(todo), executor.startup_s


def _isolate_chunk(executor, root: Path, call: tuple) -> dict:
    """A chunk whose worker died: run each input as its own task so one poison input cannot sink the rest."""
    _, chunk, rows, ing, shard_cfg, run_id, retries = call
    outcomes: list = [None] * len(rows)
    for i, result in executor.map(ingest.prepare, [(r, ing, run_id, retries) for r in rows]):
        if isinstance(result, BaseException):
            result = ingest.failure_outcome(rows[i], run_id, "worker_crash", f"{type(result).__name__}: {result}",
                                     attempts=retries + 1)
        outcomes[i] = result
    return ingest.write_chunk(root, chunk, outcomes, shard_cfg)


def build(cfg: BuildConfig, command: str = "aig build-data", overwrite: bool = False) -> BuildReport:
    root = Path(cfg.output)
    start = time.perf_counter()
    with dataset_lock(root):
        if overwrite:
            clear_dataset(root)
        runs = read_table(root, "runs")
        unfinished = [r for r in runs if r["status"] != "complete"]
        if unfinished:
            run = unfinished[-1]
            if run["config_hash"] != cfg.content_hash():
                raise BuildError(
                    f"'{root}' has an unfinished run {run['run_id']} started by `{run['command']}` with a different "
                    "configuration; re-run that command to finish it, or pass --overwrite to start fresh"
                )
            run["resumed"] += 1
            plan = _load_plan(root, run["run_id"])
            log(f"resuming {run['run_id']} ({len(plan)} inputs planned)")
        else:
            run, plan = _new_run(root, cfg, command, runs)
        chunks_run, ray_s = _run_chunks(root, cfg, run["run_id"], plan)
        plan_chunks = {layout.chunk_name(ingest.GROUP, r["chunk"]) for r in plan}
        markers = layout.done_markers(root)
        run.update(status="complete", finished_at=provenance.now(),
                   n_samples=sum(markers[c]["samples"] for c in plan_chunks),
                   n_failures=sum(markers[c]["failures"] for c in plan_chunks))
        write_run(root, run)
        info.write_info(root)
        refresh_catalog(root)
    return BuildReport(root, run["run_id"], bool(run["resumed"]), len(plan), chunks_run, run["n_samples"],
                       run["n_failures"], time.perf_counter() - start, ray_s)
