"""A chunk's outputs: its tars (+ indexes), its samples/failures Parquet, then its done marker.

Every stage produces a list of Outcomes per chunk and hands it to `write_chunk`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from aig.manifests.dataset import Dataset
from aig.manifests.layout import atomic_write, chunk_name
from aig.manifests.schema import parquet_bytes

from . import storage
from .config import ShardConfig
from .runner import worker_location
from .shards import Sample, group_into_shards, index_table, write_shard

SPLITS = ("train", "val", "test")
# Row fields that depend on where or when the data was built: kept out of the tar's JSON member.
NOT_IN_TAR = ("run_id", "input_path", "shard", "offset_data", "member", "size", "sha256")
CLASSES = {"real": 0, "fake": 1}  # the integer class beside `label` (timm's target_key='cls', classic loaders)


def drop_nulls(value):
    """One type per JSON field in every record: a value that is unknown is absent, never null."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


@dataclass
class Outcome:
    """Result of one input: a sample (members + manifest row) or a failure row."""

    sample: Sample | None = None
    row: dict | None = None
    failure: dict | None = None


def failure_outcome(input_path: str, run_id: str, stage: str, group: str, chunk: int, reason: str, error: str,
                    attempts: int = 1, duplicate_of: str | None = None) -> Outcome:
    return Outcome(failure={
        "input_path": input_path, "run_id": run_id, "stage": stage, "chunk": chunk_name(group, chunk),
        "reason": reason, "error": error, "attempts": attempts, "duplicate_of": duplicate_of,
    })


def sample_outcome(key: str, data: bytes, ext: str, provenance: dict | None = None, extra_json: dict | None = None,
                   **row) -> Outcome:
    """One image sample: `{key}.{ext}` plus `{key}.json` (the row's portable fields, plus `extra_json`)."""
    row.update(key=key, format=ext, member=f"{key}.{ext}", sha256=hashlib.sha256(data).hexdigest(), size=len(data),
               provenance=json.dumps(provenance, sort_keys=True) if provenance is not None else None)
    meta = {k: v for k, v in row.items() if k not in NOT_IN_TAR}
    if provenance is not None:
        meta["provenance"] = provenance
    if row.get("label") in CLASSES:
        meta["cls"] = CLASSES[row["label"]]
    meta.update(extra_json or {})
    members = {ext: data, "json": json.dumps(drop_nulls(meta), sort_keys=True).encode()}
    return Outcome(sample=Sample(key, members), row=row)


def write_chunk(root: str | Path, group: str, chunk: int, outcomes: list[Outcome], shard_cfg: ShardConfig,
                stage: str, run_id: str) -> dict:
    """Write a chunk under `root` (a folder, or a URL: staged locally, then uploaded with the done marker last)."""
    with storage.chunk_output(root) as local:
        return _write_chunk(local, group, chunk, outcomes, shard_cfg, stage, run_id)


def _write_chunk(root: Path, group: str, chunk: int, outcomes: list[Outcome], shard_cfg: ShardConfig,
                 stage: str, run_id: str) -> dict:
    name, ds = chunk_name(group, chunk), Dataset(root)
    rows = {o.row["key"]: o.row for o in outcomes if o.sample}
    if len(rows) != sum(1 for o in outcomes if o.sample):
        raise ValueError(f"chunk {name}: duplicate sample keys")
    shard_files = []
    for split in SPLITS:
        samples = [o.sample for o in outcomes if o.sample and o.row["split"] == split]
        for part, members in enumerate(group_into_shards(samples, shard_cfg.samples_per_shard,
                                                         shard_cfg.max_shard_bytes)):
            tar_path = ds.shard_path(group, split, chunk, part)
            written = write_shard(tar_path, members)
            atomic_write(ds.index_path(tar_path), parquet_bytes(index_table(written.entries)))
            rel = tar_path.relative_to(root).as_posix()
            for e in written.entries:
                row = rows[e.key]
                if e.member == row["member"]:
                    row.update(shard=rel, offset_data=e.offset_data)
            shard_files.append({"path": rel, "split": split, "samples": len(members),
                                "bytes": written.nbytes, "sha256": written.sha256})
    samples_rows = sorted(rows.values(), key=lambda r: r["key"])
    failure_rows = [o.failure for o in outcomes if o.failure]
    ds.write_table("samples", name, samples_rows)
    ds.write_table("failures", name, failure_rows)
    stats = {"chunk": name, "stage": stage, "run_id": run_id, "inputs": len(outcomes), "samples": len(samples_rows),
             "failures": len(failure_rows), "shards": shard_files, "worker": worker_location()}
    ds.mark_done(name, stats)
    return stats
