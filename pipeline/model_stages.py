"""Driver side of the model stages (reconstruct, inpaint, generate): one output chunk per real chunk and model.

Each model is checked in the driver first (config only: a bad id fails in seconds), then loaded once
per actor; chunks of real samples are handed to the actors. Workers are registered by `aig/stages.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aig.manifests.dataset import Dataset
from aig.manifests.layout import chunk_name

from .config import BuildConfig

MODEL_STAGES = ("reconstruct", "inpaint", "generate")
REAL_GROUP = "real"
CAPTION_GROUP_PREFIX = "captions-"  # chunks written by `aig label-semantic --caption`


@dataclass(frozen=True)
class StageJob:
    stage: str
    spec: object  # AutoencoderSpec | PipelineSpec
    worker: type
    section: object  # the stage's config section


# name -> function(cfg) -> [StageJob]: the model's driver-side check and its worker. Filled by the
# composition root (aig/stages.py), so this package never imports the packages that hold the workers.
STAGE_JOBS: dict[str, Callable[[BuildConfig], list[StageJob]]] = {}


def register_stage(stage: str):
    """Decorator: register the function that gives a model stage's checked jobs."""
    def add(fn):
        STAGE_JOBS[stage] = fn
        return fn
    return add


def stage_jobs(cfg: BuildConfig, stage: str) -> list[StageJob]:
    """The models a stage runs, checked in the driver (fast failure for a bad id or path)."""
    if stage not in STAGE_JOBS:
        raise ValueError(f"no worker registered for the model stage '{stage}': build through aig "
                         "(the `aig` command or `aig.build_data`), which registers them")
    return STAGE_JOBS[stage](cfg)


def real_chunks(root: Path) -> dict[int, list[dict]]:
    """Rows of every finished ingest chunk, by chunk number."""
    import pyarrow.parquet as pq

    out = {}
    for name in Dataset(root).done_markers():
        group, _, number = name.rpartition("-")
        if group == REAL_GROUP:
            rows = pq.read_table(Dataset(root).table_file("samples", name)).to_pylist()
            for r in rows:
                r["chunk"] = int(number)
            out[int(number)] = rows
    return dict(sorted(out.items()))


def caption_chunks(root: Path) -> dict[int, list[dict]]:
    """Reals that had no caption and got one from `aig label-semantic --caption`: one chunk per finished caption
    chunk, numbered in run order (append-only); a real captioned twice is used once."""
    import pyarrow.parquet as pq

    markers = Dataset(root).done_markers()
    names = sorted((m["run_id"], name) for name, m in markers.items() if name.startswith(CAPTION_GROUP_PREFIX))
    if not names:
        return {}
    reals = {r["key"]: r for rows in real_chunks(root).values() for r in rows}
    seen: set[str] = set()
    out = {}
    for i, (_, name) in enumerate(names):
        rows = []
        for c in pq.read_table(Dataset(root).table_file("captions", name), columns=["key", "caption"]).to_pylist():
            real = reals.get(c["key"])
            if real and not real.get("caption") and c["key"] not in seen:
                seen.add(c["key"])
                rows.append({**real, "caption": c["caption"]})
        out[i] = rows
    return out


def prompt_chunks(cfg: BuildConfig) -> dict[int, list[dict]]:
    """Prompts from the generate stage's prompt files, as rows shaped like real samples (split by prompt hash)."""
    import hashlib

    from .plan import assign_split
    from .sources import InputError

    rows = []
    for path in cfg.generate.prompt_files:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"prompt file '{path}' does not exist; give a text file with one prompt a line")
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            sid = hashlib.sha256(f"prompt:{text}".encode()).hexdigest()[:16]
            rows.append({"key": None, "source_id": sid, "group_id": sid, "split": assign_split(sid, cfg.split),
                         "caption": text, "input_path": f"{p.resolve()}#{n}", "origin": "prompts"})
    size = cfg.shards.samples_per_shard
    return {i // size: rows[i:i + size] for i in range(0, len(rows), size)}


def model_load_failure(err: BaseException):
    """The ModelLoadError behind a chunk's error, if any: raised by a worker's model load (probe), or reported
    by Ray for an actor whose start-up raised it (only its text survives there)."""
    import re

    from .hub import ModelLoadError

    cause = getattr(err, "cause", None)
    if isinstance(cause, ModelLoadError):
        return cause
    if isinstance(err, ModelLoadError) and cause is None:
        return err
    found = re.findall(r"ModelLoadError: (.+)", str(err))
    return ModelLoadError(found[-1].strip()) if found else None


def run_stage(root: Path, cfg: BuildConfig, run_id: str, stage: str, lazy, jobs: list[StageJob],
              dest: str | None = None) -> list[str]:
    """Run the stage's missing chunks; returns error messages of chunks that failed (they stay to-do).

    Workers read and write the dataset at `dest` (a URL on object storage; default: root).
    """
    from tqdm import tqdm

    from .shards import is_disk_full

    sources = [("", real_chunks(root))]
    if stage == "generate" and cfg.generate.prompt_files:
        sources.append(("-prompts", prompt_chunks(cfg)))
    if stage == "generate":
        sources.append(("-captioned", caption_chunks(root)))
    done = set(Dataset(root).done_markers())
    errors: list[str] = []
    for job in jobs:
        todo, calls = [], []
        for suffix, chunks in sources:
            group = job.spec.group() + suffix
            for k, rows in chunks.items():
                if rows and chunk_name(group, k) not in done:
                    todo.append((group, k, len(rows)))
                    calls.append((dest or str(root), k, rows, cfg.shards, run_id, group))
        if not todo:
            continue
        bar = tqdm(total=sum(n for _, _, n in todo), unit="img", desc=f"{stage} {job.spec.name}",
                   mininterval=1.0, file=sys.stderr, dynamic_ncols=True)
        try:
            for i, result in lazy.get().map_actors(job.worker, (job.spec, job.section), "run_chunk", calls,
                                                 cfg.runner.gpus_per_worker):
                group, k, n = todo[i]
                if isinstance(result, BaseException) and is_disk_full(result):
                    raise result  # build() turns it into a clear error; retrying other chunks cannot help
                if isinstance(result, BaseException) and (probe := model_load_failure(result)):
                    raise probe  # the model cannot run at all: retrying its other chunks cannot help
                if isinstance(result, BaseException):
                    errors.append(f"{chunk_name(group, k)}: {type(result).__name__}: {result}")
                else:
                    bar.set_postfix(failed=result["failures"], refresh=False)
                bar.update(n)
        finally:
            bar.close()
    return errors
