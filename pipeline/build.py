"""`aig build-data`: plan a run (or resume an unfinished one), run its chunks, publish the catalog."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .hub import ModelLoadError
from aig.manifests.dataset import Dataset
from aig.manifests.layout import atomic_write, chunk_name
from aig.manifests.schema import parquet_bytes, read_parquet

from aig.manifests.errors import AigError

from . import info, ingest, provenance, storage
from .chunks import write_chunk
from .config import BuildConfig
from .driver import Timers, run_chunks
from .model_stages import MODEL_STAGES, model_chunks
from .plan import hash_inputs, make_plan
from .runner import make_executor
from .shards import is_disk_full
from .sources import enumerate_inputs
from .stage import Chunk, Stage, checked_stages


class BuildError(AigError, RuntimeError):
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
    by_stage: dict[str, tuple[int, int]]  # stage -> (samples, failures) written by this run
    location: str | None = None  # the URL of a dataset on object storage (root is then its local mirror)
    timers: dict[str, Timers] = field(default_factory=dict)  # "build" (driver phases) and each stage run's label
    recorded: bool = True  # False: nothing to do, so no run was recorded (run_id names none)


def disk_full_error(root: Path, e: BaseException) -> BuildError:
    """The message for a full disk: which dataset, how much is free, and how to go on."""
    try:
        free = f"{shutil.disk_usage(root).free / 2**20:.1f} MiB free now"
    except OSError:
        free = "free space unknown"
    cause = getattr(e, "cause", None) or e
    return BuildError(
        f"the disk holding dataset '{root}' is full ({free}; {type(cause).__name__}: {cause}). "
        "Finished chunks are kept and no partial shard has a final name: free some space on that disk "
        "(or move the dataset folder to a bigger one) and re-run the same command to resume."
    )


def permission_error(root: Path, e: PermissionError) -> BuildError:
    return BuildError(f"cannot write to dataset folder '{root}' ({e.strerror}: {e.filename}); fix its "
                      "permissions, or use another folder")


def log(msg: str) -> None:
    print(f"[aig] {msg}", file=sys.stderr, flush=True)


def clear_dataset(root: Path) -> None:
    """--overwrite: delete what aig wrote at the root (by name); anything else stays."""
    if not root.exists():
        return
    ds = Dataset(root)
    if ds.foreign_entries() and not ds.is_dataset():
        raise BuildError(f"'{root}' is not an aig dataset folder; refusing to delete it with --overwrite")
    for child in root.iterdir():
        if child == ds.lock_path or not ds.is_own(child.name):
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


def _inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(root: Path, inputs) -> None:
    """Refuse an output that is a file, overlaps an input folder, or is a non-empty folder of other files."""
    if root.exists() and not root.is_dir():
        raise BuildError(f"output '{root}' is an existing file, not a folder; name a new or dataset folder with -o")
    real = root.resolve()
    folders = [*inputs.folders, *(s for s in inputs.shards if not storage.is_url(s) and Path(s).is_dir())]
    for folder in folders:
        if storage.is_url(folder):
            continue
        f = Path(folder).resolve()
        if _inside(real, f) or _inside(f, real):
            how = "is" if real == f else "lies inside" if _inside(real, f) else "contains"
            raise BuildError(f"output '{root}' {how} input folder '{folder}'; write the dataset to a folder "
                             "outside the inputs (-o)")
    foreign = Dataset(root).foreign_entries()
    if foreign and not Dataset(root).is_dataset():
        raise BuildError(f"output '{root}' is not empty and not an aig dataset (it holds '{foreign[0].name}'"
                         f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}); name a new or empty "
                         "folder with -o")


def _clear(store) -> None:
    """--overwrite: a local folder, or a remote dataset and its local mirror."""
    if not isinstance(store, storage.Mirror):
        return clear_dataset(store.local)
    if store.remote_state() == "other":
        raise BuildError(f"'{store.url}' holds objects but no aig dataset; refusing to delete them with --overwrite")
    store.clear()


def _next_chunk(root: Path, run_ids: set[str]) -> int:
    """First free chunk number; a plan whose run row was never written (killed in between) does not count."""
    import pyarrow.compute as pc

    last = -1
    for run_id in run_ids:
        if not Dataset(root).plan_path(run_id).is_file():
            continue  # not a build run (e.g. label-semantic)
        col = read_parquet(Dataset(root).plan_path(run_id), ["chunk"])["chunk"]
        if len(col):
            last = max(last, pc.max(col).as_py())
    return last + 1


def _new_run(root: Path, cfg: BuildConfig, command: str, runs: list[dict],
             on_work: Callable[[], None] = lambda: None, timers: Timers | None = None) -> tuple[dict, list[dict]]:
    """Plan a new run; with new inputs, `on_work()` (Ray start-up and its prestarted workers) runs in this
    thread while other threads hash them. The run is recorded (plan, then run row) once it has work."""
    ds = Dataset(root)
    run_id = ds.new_run_id()
    items = enumerate_inputs(cfg.inputs) if "ingest" in cfg.stages else []
    known = {r["input_path"] for r in ds.read_table("samples", ["input_path"])}
    known |= {r["input_path"] for r in ds.read_table("failures", ["input_path"])}
    fresh = [i for i in items if i.input_path not in known]
    if known and len(fresh) < len(items):
        log(f"{len(items) - len(fresh)} inputs are already in the dataset; appending {len(fresh)} new ones")
    existing = [r for r in ds.read_table("samples", ["key", "source_sha256", "input_path", "group_id", "phash"])
                if r["source_sha256"]]  # reals only: derived samples have no source bytes of their own
    t0 = time.perf_counter()
    ing = cfg.ingest
    timers = timers or Timers()

    def hashed():
        with timers.track("hash inputs"):
            return hash_inputs(fresh, max_pixels=ing.max_pixels if ing.near_dup != "off" else None,
                               download=ing.download)

    with ThreadPoolExecutor(1) as pool:  # Ray workers warm up while the driver hashes the inputs
        hashing = pool.submit(hashed)
        if fresh:
            on_work()
        hashes = hashing.result()
    log(f"planned {len(fresh)} inputs in {time.perf_counter() - t0:.1f}s")
    plan = make_plan(fresh, hashes, existing, cfg.split, cfg.shards.samples_per_shard,
                     _next_chunk(root, {r["run_id"] for r in runs}), ing.near_dup, ing.near_dup_distance)
    if near := sum(1 for r in plan if r["near_dup_of"]):
        log(f"{near} inputs are near-duplicates of another ({'dropped' if ing.near_dup == 'drop' else 'grouped'})")
    run = {
        "run_id": run_id, "command": command, "status": "running", "started_at": provenance.now(),
        "config_hash": cfg.content_hash(), "config": json.dumps(cfg.to_dict(), sort_keys=True),
        "versions": json.dumps(provenance.library_versions(), sort_keys=True), "git_commit": provenance.git_commit(),
        "host": provenance.host(), "n_inputs": len(plan), "resumed": 0,
    }
    if plan:
        _record(root, run, plan)
    return run, plan


def _record(root: Path, run: dict, plan: list[dict]) -> None:
    """The plan first, then its run row: from here on a killed run resumes."""
    ds = Dataset(root)
    atomic_write(ds.plan_path(run["run_id"]), parquet_bytes(_plan_table(plan)))
    ds.write_run(run)


def _plan_table(plan: list[dict]):
    import pyarrow as pa

    return pa.Table.from_pylist(plan) if plan else pa.table({"chunk": pa.array([], pa.int64())})


def _load_plan(root: Path, run_id: str) -> list[dict]:
    path = Dataset(root).plan_path(run_id)
    if not path.is_file():
        return []
    return [r for r in read_parquet(path).to_pylist() if "input_path" in r]


class LazyExecutor:
    """Starts Ray (or the local executor) on first use only: a run with nothing to do starts nothing."""

    def __init__(self, cfg):
        self.cfg, self._ex = cfg, None

    def get(self):
        if self._ex is None:
            self._ex = make_executor(self.cfg)
            if self._ex.startup_s:
                log(f"ray ready in {self._ex.startup_s:.1f}s ({self._ex.address}, {self._ex.workers} CPUs)")
        return self._ex

    @property
    def startup_s(self) -> float:
        return self._ex.startup_s if self._ex else 0.0

    def close(self) -> None:
        if self._ex is not None:
            self._ex.close()


def ingest_stage(cfg: BuildConfig, run_id: str, plan: list[dict], done: set[str],
                 dest: str) -> tuple[Stage, list[Chunk]]:
    """The ingest stage (one task per chunk; a crashed chunk is redone input by input) and its unfinished chunks;
    workers write them to `dest` (the dataset folder or URL)."""
    by_chunk: dict[int, list[dict]] = {}
    for row in plan:
        by_chunk.setdefault(row["chunk"], []).append(row)
    todo = sorted(c for c in by_chunk if chunk_name(ingest.GROUP, c) not in done)
    chunks = [Chunk(chunk_name(ingest.GROUP, c), len(by_chunk[c]),
                    (dest, c, by_chunk[c], cfg.ingest, cfg.shards, run_id, cfg.runner.max_retries)) for c in todo]
    return Stage(ingest.STAGE, "ingest", ingest.GROUP, ingest.run_chunk, method=None, isolate=_isolate_chunk), chunks


def _isolate_chunk(executor, chunk: Chunk, err: BaseException) -> dict:
    """A chunk whose worker died: run each input as its own task so one poison input cannot sink the rest."""
    dest, number, rows, ing, shard_cfg, run_id, retries = chunk.args
    log(f"chunk {number} crashed ({type(err).__name__}); processing its inputs one by one")
    outcomes: list = [None] * len(rows)
    for i, result in executor.map(ingest.prepare, [(r, ing, run_id, retries) for r in rows]):
        if isinstance(result, BaseException):
            result = ingest.failure(rows[i], run_id, "worker_crash", f"{type(result).__name__}: {result}",
                                    attempts=retries + 1)
        outcomes[i] = result
    return write_chunk(dest, ingest.GROUP, number, outcomes, shard_cfg, ingest.STAGE, run_id)


def _start_or_resume(root: Path, cfg: BuildConfig, command: str, on_work: Callable[[], None] = lambda: None,
                     timers: Timers | None = None) -> tuple[dict, list[dict]]:
    runs = Dataset(root).runs
    unfinished = [r for r in runs if r["status"] == "running"]  # labelling runs end complete|incomplete
    if not unfinished:
        return _new_run(root, cfg, command, runs, on_work, timers)
    run = unfinished[-1]
    if run["config_hash"] != cfg.content_hash():
        raise BuildError(
            f"'{root}' has an unfinished run {run['run_id']} started by `{run['command']}` with a different "
            "configuration; re-run that command to finish it, or pass --overwrite to start fresh"
        )
    run["resumed"] += 1
    plan = _load_plan(root, run["run_id"])
    log(f"resuming {run['run_id']} ({len(plan)} inputs planned)")
    return run, plan


def build(cfg: BuildConfig, command: str = "aig build-data", overwrite: bool = False) -> BuildReport:
    store = storage.open_output(cfg.output)  # a local folder, or a URL whose manifest the driver mirrors
    root = store.local
    if not isinstance(store, storage.Mirror):
        check_output(root, cfg.inputs)
    start = time.perf_counter()
    try:
        return _build(store, cfg, command, overwrite, start)
    except Exception as e:  # a Ray task error wraps the worker's OSError
        if is_disk_full(e):
            raise disk_full_error(root, e) from None
        if isinstance(e, PermissionError):
            raise permission_error(root, e) from None
        raise


def _build(store, cfg: BuildConfig, command: str, overwrite: bool, start: float) -> BuildReport:
    root = store.local
    ds = Dataset(root)
    timers = {"build": Timers()}
    phase = timers["build"].track
    with ds.lock():
        if overwrite:
            _clear(store)
        # Models are checked before anything runs: a bad id fails in seconds, with nothing half-built.
        with phase("check models"):
            stages = {name: checked_stages(cfg, name) for name in MODEL_STAGES if name in cfg.stages}
        store.pull()
        lazy = LazyExecutor(cfg.runner)
        try:
            with phase("plan"):
                run, plan = _start_or_resume(root, cfg, command, lambda: lazy.get().warm(ingest.__name__),
                                             timers["build"])
        except BaseException:
            lazy.close()
            raise
        run_id = run["run_id"]
        recorded = bool(plan or run["resumed"])
        pending = {} if recorded else {stage.label: model_chunks(stage, root, run_id, cfg.shards, store.url)
                                       for stage_list in stages.values() for stage in stage_list}
        if not recorded and any(pending.values()):
            _record(root, run, plan)
            recorded = True
        store.push()  # the plan, then its run row
        for tmp in ds.temp_files():
            tmp.unlink(missing_ok=True)  # leftovers of a killed run; never visible under a final name
        errors: list[str] = []
        probe_error = None
        chunks_run = 0
        try:
            if "ingest" in cfg.stages:
                stage, chunks = ingest_stage(cfg, run_id, plan, set(Dataset(root).done_markers()), store.url)
                timers[stage.label] = run_chunks(stage, chunks, lazy.get).timers
                chunks_run = len(chunks)
            store.pull()  # the chunks the workers uploaded, for the model stages
            for name, stage_list in stages.items():
                if not stage_list:
                    log(f"stage {name}: no model configured, skipped")
                for stage in stage_list:
                    chunks = pending.get(stage.label)
                    if chunks is None:  # after this run's ingest
                        chunks = model_chunks(stage, root, run_id, cfg.shards, store.url)
                    done = run_chunks(stage, chunks, lazy.get, cfg.runner.gpus_per_worker)
                    errors += done.errors
                    timers[stage.label] = done.timers
        except ModelLoadError as e:  # a model failed its probe in a worker: what finished stays published
            probe_error = e
            errors.append(str(e))
        finally:
            with phase("close executor"):
                lazy.close()
        for tmp in ds.temp_files():
            tmp.unlink(missing_ok=True)  # left by a worker killed mid-write (its task was retried)
        store.pull()
        mine = [m for m in ds.done_markers().values() if m.get("run_id") == run_id]
        by_stage: dict[str, tuple[int, int]] = {}
        for m in mine:
            n, f = by_stage.get(m["stage"], (0, 0))
            by_stage[m["stage"]] = (n + m["samples"], f + m["failures"])
        run.update(n_samples=sum(m["samples"] for m in mine), n_failures=sum(m["failures"] for m in mine))
        if not errors:
            run.update(status="complete", finished_at=provenance.now())
        with phase("info.json"):
            info.write_info(root)
        with phase("catalog"):
            ds.refresh_catalog()
        if recorded:  # last: a run killed before this line resumes and finishes the steps above
            with phase("runs table"):
                ds.write_run(run)
        store.push()
    if probe_error:
        raise probe_error
    if errors:
        raise BuildError(f"{len(errors)} chunk(s) failed and stay to do; fix the cause and re-run the same "
                         "command to finish them:\n  " + "\n  ".join(errors[:20]))
    return BuildReport(root, run_id, bool(run["resumed"]), len(plan), chunks_run, run["n_samples"],
                       run["n_failures"], time.perf_counter() - start, lazy.startup_s, by_stage,
                       store.url if storage.is_url(store.url) else None, timers, recorded)
