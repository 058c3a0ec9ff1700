"""The ingest stage: turn one chunk of planned inputs into shards, manifest rows and a done marker."""

from __future__ import annotations

import hashlib
import os

from .chunks import Outcome, failure_outcome, sample_outcome, write_chunk
from .config import IngestConfig, ShardConfig
from .decode import DecodeLimits, Rejected, canonicalize, decode_image, encode_image, kept_input, reduce_target
from .sources import InputItem, fetch_input

STAGE = "ingest"
GROUP = "real"  # shard group written by this stage


def failure(plan_row: dict, run_id: str, reason: str, error: str, attempts: int = 1, duplicate_of=None) -> Outcome:
    return failure_outcome(plan_row["input_path"], run_id, STAGE, GROUP, plan_row["chunk"], reason, error,
                           attempts, duplicate_of)


def _item(plan_row: dict) -> InputItem:
    return InputItem(plan_row["input_path"], plan_row["file"], plan_row["offset"], plan_row["size"])


def prepare(plan_row: dict, cfg: IngestConfig, run_id: str, max_retries: int) -> Outcome:
    """Read, validate, canonicalise and encode one planned input. Never raises for a bad input."""
    if plan_row["duplicate_of"]:
        return failure(plan_row, run_id, "duplicate", f"same bytes as {plan_row['duplicate_of']}",
                       attempts=0, duplicate_of=plan_row["duplicate_of"])
    if plan_row["error"]:
        reason, _, detail = plan_row["error"].partition(": ")
        return failure(plan_row, run_id, reason, detail, attempts=0, duplicate_of=plan_row.get("near_dup_input"))
    attempts = 0
    while True:
        attempts += 1
        try:
            return _prepare_once(plan_row, cfg, run_id)
        except Rejected as e:
            return failure(plan_row, run_id, e.reason, e.detail, attempts)
        except Exception as e:  # unexpected (I/O, memory, library bug): retry, then record
            if attempts > max_retries:
                reason = "read_error" if isinstance(e, OSError) else "error"
                return failure(plan_row, run_id, reason, f"{type(e).__name__}: {e}", attempts)


def _prepare_once(plan_row: dict, cfg: IngestConfig, run_id: str) -> Outcome:
    data = fetch_input(_item(plan_row), cfg.download)
    sha = hashlib.sha256(data).hexdigest()
    if sha != plan_row["source_sha256"]:
        raise Rejected("changed", "file content changed between planning and ingest; re-run build-data")
    size = cfg.resolved_size()
    decoded, src = decode_image(data, DecodeLimits(cfg.min_size, cfg.max_pixels),
                                reduce_to=lambda w, h: reduce_target(cfg.policy, size, w, h))
    img = canonicalize(decoded, cfg.policy, size)
    # Left as decoded: store the input's own bytes (same pixels, no re-encode; a JPEG keeps its compression).
    ext = kept_input(src, cfg.image_format) if cfg.keep_input and img is decoded else None
    encoded, ext = (data, ext) if ext else encode_image(img, cfg.image_format, cfg.jpeg_quality)
    key = plan_row["key"]
    canonical = f"{cfg.policy}:{size}"
    return sample_outcome(
        key=key, data=encoded, ext=ext, run_id=run_id, stage=STAGE, task="both", split=plan_row["split"],
        label="real", source_id=key, group_id=plan_row["group_id"], input_path=plan_row["input_path"],
        origin=plan_row["origin"], caption=plan_row["caption"], width=img.width, height=img.height,
        source_sha256=sha, source_format=src.format, source_mode=src.mode, source_width=src.width,
        source_height=src.height, source_quality=src.quality, canonical=canonical,
        phash=plan_row.get("phash"), near_dup_of=plan_row.get("near_dup_of"),
    )


def run_chunk(root: str, chunk: int, plan_rows: list[dict], cfg: IngestConfig, shard_cfg: ShardConfig,
              run_id: str, max_retries: int) -> dict:
    """Whole chunk in one worker: prepare every input, then write."""
    outcomes = [prepare(r, cfg, run_id, max_retries) for r in plan_rows]
    stats = write_chunk(root, GROUP, chunk, outcomes, shard_cfg, STAGE, run_id)
    stats["pid"] = os.getpid()
    return stats
