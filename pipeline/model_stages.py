"""Driver side of the model stages (reconstruct, inpaint, generate): one output chunk per real chunk and model.

Each model is checked in the driver first (config only: a bad id fails in seconds), then loaded once
per actor; chunks of real samples are handed to the actors by the chunk driver. The stages are registered by
`aig/stages.py`.
"""

from __future__ import annotations

from pathlib import Path

from aig.manifests.dataset import Dataset
from aig.manifests.layout import chunk_name
from aig.manifests.schema import read_parquet

from .config import BuildConfig
from .stage import Chunk, Stage

MODEL_STAGES = ("reconstruct", "inpaint", "generate")
REAL_GROUP = "real"
CAPTION_GROUP_PREFIX = "captions-"  # chunks written by `aig label-semantic --caption`


def real_chunks(root: Path) -> dict[int, list[dict]]:
    """Rows of every finished ingest chunk, by chunk number."""
    out = {}
    for name in Dataset(root).done_markers():
        group, _, number = name.rpartition("-")
        if group == REAL_GROUP:
            rows = read_parquet(Dataset(root).table_file("samples", name)).to_pylist()
            for r in rows:
                r["chunk"] = int(number)
            out[int(number)] = rows
    return dict(sorted(out.items()))


def caption_chunks(root: Path) -> dict[int, list[dict]]:
    """Reals that had no caption and got one from `aig label-semantic --caption`: one chunk per finished caption
    chunk, numbered in run order (append-only); a real captioned twice is used once."""
    markers = Dataset(root).done_markers()
    names = sorted((m["run_id"], name) for name, m in markers.items() if name.startswith(CAPTION_GROUP_PREFIX))
    if not names:
        return {}
    reals = {r["key"]: r for rows in real_chunks(root).values() for r in rows}
    seen: set[str] = set()
    out = {}
    for i, (_, name) in enumerate(names):
        rows = []
        for c in read_parquet(Dataset(root).table_file("captions", name), ["key", "caption"]).to_pylist():
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


def model_stage(name: str, spec, worker: type, section, check, reads=None) -> Stage:
    """A model stage's Stage: one actor pool per model (spec), reading the finished real chunks unless told."""
    group = spec.group()
    return Stage(name, f"{name} {spec.name}", group, worker, (spec, section), check=check, fatal=model_load_failure,
                 reads=reads or (lambda root: {group: real_chunks(root)}))


def generate_reads(cfg: BuildConfig, group: str):
    """What a text-to-image model reads: the reals' captions, the prompt files, the captions label-semantic added."""
    def reads(root: Path) -> dict[str, dict[int, list[dict]]]:
        out = {group: real_chunks(root)}
        if cfg.generate.prompt_files:
            out[group + "-prompts"] = prompt_chunks(cfg)
        out[group + "-captioned"] = caption_chunks(root)
        return out
    return reads


def model_chunks(stage: Stage, root: Path, run_id: str, shard_cfg, dest: str) -> list[Chunk]:
    """The stage's unfinished chunks; workers read and write the dataset at `dest` (a URL on object storage, or root)."""
    done = set(Dataset(root).done_markers())
    return [Chunk(chunk_name(group, k), len(rows), (dest, k, rows, shard_cfg, run_id, group))
            for group, by_number in stage.reads(root).items()
            for k, rows in by_number.items() if rows and chunk_name(group, k) not in done]
