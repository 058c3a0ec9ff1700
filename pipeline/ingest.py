"""The ingest stage: turn one chunk of planned inputs into shards, manifest rows and a done marker."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from manifests.schema import FAILURES, SAMPLES, parquet_bytes, to_table

from . import layout
from .config import IngestConfig, ShardConfig
from .decode import DecodeLimits, Rejected, canonicalize, decode_image, encode_image
from .shards import Sample, atomic_write, group_into_shards, index_table, write_shard
from .sources import InputItem, read_bytes

STAGE = "ingest"
GROUP = "real"  # shard group written by this stage


@dataclass
class Outcome:
    """Result of one input: a sample (members + manifest row) or a failure row."""

    sample: Sample | None = None
    row: dict | None = None
    failure: dict | None = None


def failure_outcome(plan_row: dict, run_id: str, reason: str, error: str, attempts: int = 1, duplicate_of=None) -> Outcome:
    return Outcome(failure={
        "input_path": plan_row["input_path"], "run_id": run_id, "stage": STAGE,
        "chunk": layout.chunk_name(GROUP, plan_row["chunk"]), "reason": reason, "error": error,
        "attempts": attempts, "duplicate_of": duplicate_of,
    })


def _item(plan_row: dict) -> InputItem:
    return InputItem(plan_row["input_path"], plan_row["file"], plan_row["offset"], plan_row["size"])


def prepare(plan_row: dict, cfg: IngestConfig, run_id: str, max_retries: int) -> Outcome:
    """Read, validate, canonicalise and encode one planned input. Never raises for a bad input."""
    if plan_row["duplicate_of"]:
        return failure_outcome(plan_row, run_id, "duplicate", f"same bytes as {plan_row['duplicate_of']}",
                        attempts=0, duplicate_of=plan_row["duplicate_of"])
    if plan_row["error"]:
        reason, _, detail = plan_row["error"].partition(": ")
        return failure_outcome(plan_row, run_id, reason, detail, attempts=0)
    attempts = 0
    while True:
        attempts += 1
        try:
            return _prepare_once(plan_row, cfg, run_id)
        except Rejected as e:
            return failure_outcome(plan_row, run_id, e.reason, e.detail, attempts)
        except Exception as e:  # unexpected (I/O, memory, library bug): retry, then record
            if attempts > max_retries:
                reason = "read_error" if isinstance(e, OSError) else "error"
                return failure_outcome(plan_row, run_id, reason, f"{type(e).__name__}: {e}", attempts)


def _prepare_once(plan_row: dict, cfg: IngestConfig, run_id: str) -> Outcome:
    data = read_bytes(_item(plan_row))
    sha = hashlib.sha256(data).hexdigest()
    if sha != plan_row["source_sha256"]:
        raise Rejected("changed", "file content changed between planning and ingest; re-run build-data")
    img, src = decode_image(data, DecodeLimits(cfg.min_size, cfg.max_pixels))
    img = canonicalize(img, cfg.policy, cfg.size)
    encoded, ext = encode_image(img, cfg.image_format, cfg.jpeg_quality)
    key = plan_row["key"]
    canonical = f"{cfg.policy}:{cfg.size}" if cfg.policy != "native" else "native"
    meta = {
        "key": key, "source_id": key, "group_id": plan_row["group_id"], "split": plan_row["split"],
        "label": "real", "task": "both", "caption": plan_row["caption"], "width": img.width,
        "height": img.height, "format": ext, "canonical": canonical, "source_sha256": sha,
        "source": {"format": src.format, "mode": src.mode, "width": src.width, "height": src.height},
    }
    members = {ext: encoded, "json": json.dumps(meta, sort_keys=True).encode()}
    row = {
        "key": key, "run_id": run_id, "stage": STAGE, "task": "both", "split": plan_row["split"],
        "label": "real", "source_id": key, "group_id": plan_row["group_id"], "pair_id": None,
        "generator": None, "generator_kind": None, "provenance": None,
        "input_path": plan_row["input_path"], "origin": plan_row["origin"], "caption": plan_row["caption"],
        "width": img.width, "height": img.height, "format": ext, "sha256": hashlib.sha256(encoded).hexdigest(),
        "size": len(encoded), "member": f"{key}.{ext}", "source_sha256": sha, "source_format": src.format,
        "source_mode": src.mode, "source_width": src.width, "source_height": src.height, "canonical": canonical,
    }
    return Outcome(sample=Sample(key, members), row=row)


def write_chunk(root: Path, chunk: int, outcomes: list[Outcome], shard_cfg: ShardConfig) -> dict:
    """Write the chunk's tars (+ indexes), its samples/failures Parquet, then its done marker."""
    name = layout.chunk_name(GROUP, chunk)
    rows = {o.row["key"]: o.row for o in outcomes if o.sample}
    shard_files = []
    for split in ("train", "val", "test"):
        samples = [o.sample for o in outcomes if o.sample and o.row["split"] == split]
        groups = group_into_shards(samples, shard_cfg.samples_per_shard, shard_cfg.max_shard_bytes)
        for part, group in enumerate(groups):
            tar_path = layout.shard_path(root, GROUP, split, chunk, part)
            written = write_shard(tar_path, group)
            atomic_write(layout.index_path(tar_path), parquet_bytes(index_table(written.entries)))
            rel = tar_path.relative_to(root).as_posix()
            for e in written.entries:
                row = rows[e.key]
                if e.member == row["member"]:
                    row.update(shard=rel, offset_data=e.offset_data)
            shard_files.append({"path": rel, "split": split, "samples": len(group),
                                "bytes": written.nbytes, "sha256": written.sha256})
    samples_rows = sorted(rows.values(), key=lambda r: r["key"])
    failure_rows = [o.failure for o in outcomes if o.failure]
    atomic_write(layout.table_file(root, "samples", name), parquet_bytes(to_table(SAMPLES, samples_rows)))
    atomic_write(layout.table_file(root, "failures", name), parquet_bytes(to_table(FAILURES, failure_rows)))
    stats = {"chunk": name, "inputs": len(outcomes), "samples": len(samples_rows),
             "failures": len(failure_rows), "shards": shard_files}
    atomic_write(layout.done_path(root, name), json.dumps(stats, indent=1, sort_keys=True).encode())
    return stats


def run_chunk(root: str, chunk: int, plan_rows: list[dict], cfg: IngestConfig, shard_cfg: ShardConfig,
              run_id: str, max_retries: int) -> dict:
    """Whole chunk in one worker: prepare every input, then write."""
    outcomes = [prepare(r, cfg, run_id, max_retries) for r in plan_rows]
    stats = write_chunk(Path(root), chunk, outcomes, shard_cfg)
    stats["pid"] = os.getpid()
    return stats
