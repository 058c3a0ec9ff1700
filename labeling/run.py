"""`aig label-semantic`: pick the samples to label, skip those already labelled, run chunks, publish."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from aig.manifests.dataset import Dataset
from aig.manifests.layout import chunk_name
from aig.pipeline.model_stages import CAPTION_GROUP_PREFIX
from aig.pipeline.driver import Timers
from aig.pipeline.stage import Chunk, Stage

from .options import LabelError
from .worker import CAPTION_STAGE, STAGE, LabelJob, LabelWorker

ANNOTATE_CANDIDATES = "((task = 'semantic' and label = 'fake') or (task = 'both' and label = 'real'))"
CAPTION_CANDIDATES = "(task = 'both' and label = 'real' and coalesce(caption, '') = '')"


@dataclass
class LabelReport:
    run_id: str
    annotator: str
    prompt_version: str
    group: str
    candidates: int
    skipped: int
    labelled: int = 0
    failures: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    startup_s: float = 0.0
    timers: Timers = field(default_factory=Timers)  # the chunk driver's timers of this run


def slug(text: str) -> str:
    """A key- and path-safe name: no dots (WebDataset keys end at the first dot), no slashes."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()[:60] or "x"


def group_name(job: LabelJob) -> str:
    model = job.backend.model.rstrip("/").split("/")[-1] if job.backend.kind == "transformers" else job.backend.model
    prefix = CAPTION_GROUP_PREFIX.rstrip("-") if job.task == "caption" else "sft"
    return f"{prefix}-{slug(job.backend.kind[:2] + '_' + model)}-{slug(job.prompt_version)}"


def candidates(root: Path, job: LabelJob, splits: list[str] | None, where: str | None, limit: int | None) -> list[dict]:
    cond = CAPTION_CANDIDATES if job.task == "caption" else ANNOTATE_CANDIDATES
    if splits:
        cond += f" and split in ({', '.join('?' for _ in splits)})"
    if where:
        cond += f" and ({where})"
    return Dataset(root).query(f"select * from samples where {cond} order by key" + (" limit ?" if limit else ""),
                               [*(splits or []), *([int(limit)] if limit else [])])


def labelled_keys(root: Path, job: LabelJob) -> set[str]:
    """Keys this annotator already labelled with this prompt version (or captioned)."""
    table = "captions" if job.task == "caption" else "semantic_labels"
    return {r["key"] for r in Dataset(root).query(f"select distinct key from {table} where annotator = ? and prompt_version = ?",
                                                  [job.backend.annotator_id(), job.prompt_version])}


def remove_unfinished(root: Path, group: str) -> int:
    """Files of this group's chunks that have no done marker (a killed run): removed so the chunk can be redone."""
    ds = Dataset(root)
    done = set(ds.done_markers())
    removed = 0
    for chunk, path in ds.chunk_files(group):
        if chunk not in done:
            path.unlink()
            removed += 1
    return removed


def next_chunk(root: Path, group: str) -> int:
    numbers = [int(name.rsplit("-", 1)[1]) for name in Dataset(root).done_markers() if name.rsplit("-", 1)[0] == group]
    return max(numbers, default=-1) + 1


def label_dataset(root: Path, job: LabelJob, runner, shard_cfg, splits=None, where=None, limit=None,
                  chunk_size: int = 64, command: str = "aig label-semantic", log=print) -> LabelReport:
    from aig.pipeline.build import disk_full_error, permission_error
    from aig.pipeline.shards import is_disk_full

    try:
        return _label_dataset(root, job, runner, shard_cfg, splits, where, limit, chunk_size, command, log)
    except Exception as e:  # a Ray task error wraps the worker's OSError
        if is_disk_full(e):
            raise LabelError(str(disk_full_error(root, e))) from None
        if isinstance(e, PermissionError):
            raise LabelError(str(permission_error(root, e))) from None
        raise


def _label_dataset(root: Path, job: LabelJob, runner, shard_cfg, splits, where, limit, chunk_size, command,
                   log) -> LabelReport:
    from aig.manifests.catalog import CatalogError
    from aig.pipeline import info, provenance

    from aig.pipeline.storage import is_url

    if is_url(root) or str(root).startswith(("s3:/", "gs:/", "az:/")):
        raise LabelError(f"'{root}' is in object storage: label-semantic works on a local dataset; copy it first "
                         "(e.g. `aws s3 sync URL DIR`), label it, and sync it back")
    ds = Dataset(root)
    if not ds.catalog_path.is_file():
        raise LabelError(f"'{root}' is not a dataset (no {ds.catalog_path.name}); build one first with "
                         f"`aig build-data -o {root}`")
    start = time.perf_counter()
    with ds.lock():
        removed = remove_unfinished(root, job.group)
        if removed:
            log(f"removed {removed} file(s) of an interrupted labelling run; their chunk is redone")
        ds.refresh_catalog()
        try:
            rows = candidates(root, job, splits, where, limit)
            done = labelled_keys(root, job)
        except CatalogError as e:
            raise LabelError(str(e)) from None
        except Exception as e:  # duckdb errors from --where
            raise LabelError(f"selecting samples failed: {e}") from None
        todo = [r for r in rows if r["key"] not in done]
        run_id = ds.new_run_id()
        report = LabelReport(run_id, job.backend.annotator_id(), job.prompt_version, job.group, len(rows),
                             len(rows) - len(todo))
        if todo:
            _run_chunks(root, job, runner, shard_cfg, todo, chunk_size, run_id, report, log)
        ds.write_run({
            "run_id": run_id, "command": command, "status": "complete" if not report.errors else "incomplete",
            "started_at": provenance.now(), "finished_at": provenance.now(), "config_hash": None,
            "config": json.dumps({"stage": CAPTION_STAGE if job.task == "caption" else STAGE,
                                  "annotator": report.annotator, "prompt_version": job.prompt_version,
                                  "decoding": job.decoding.to_dict(), "purity": job.rules.to_dict(),
                                  "group": job.group, "splits": splits, "where": where, "limit": limit},
                                 sort_keys=True),
            "versions": json.dumps(provenance.library_versions(), sort_keys=True),
            "git_commit": provenance.git_commit(), "host": provenance.host(), "n_inputs": len(todo),
            "n_samples": report.labelled, "n_failures": report.failures, "resumed": 0,
        })
        info.write_info(root)
        ds.refresh_catalog()
    report.seconds = time.perf_counter() - start
    return report


def label_stage(job: LabelJob) -> Stage:
    """Labelling as a Stage: a LabelWorker per actor (the VLM loaded once), one chunk of samples per call."""
    name = CAPTION_STAGE if job.task == "caption" else STAGE
    return Stage(name, "caption" if job.task == "caption" else "label", job.group, LabelWorker, (job,))


def _run_chunks(root, job, runner, shard_cfg, todo, chunk_size, run_id, report, log) -> None:
    from aig.pipeline.driver import run_chunks
    from aig.pipeline.runner import LocalExecutor, make_executor

    first = next_chunk(root, job.group)
    parts = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
    chunks = [Chunk(chunk_name(job.group, first + n), len(part), (str(root), first + n, part, shard_cfg, run_id))
              for n, part in enumerate(parts)]
    # HTTP backends are I/O-bound: their concurrency lives in the backend, in this process
    executor = LocalExecutor() if job.backend.kind == "openai" else make_executor(runner)
    report.startup_s = executor.startup_s
    if executor.startup_s:
        log(f"ray ready in {executor.startup_s:.1f}s ({executor.address}, {executor.workers} CPUs)")
    try:
        done = run_chunks(label_stage(job), chunks, lambda: executor, runner.gpus_per_worker)
    finally:
        executor.close()
    report.errors += done.errors
    report.timers = done.timers
    for result in done.results:
        report.labelled += result["labelled"]
        report.failures += result["failures"]
        for d, n in result.get("decisions", {}).items():
            report.decisions[d] = report.decisions.get(d, 0) + n
