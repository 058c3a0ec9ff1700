"""Plan a run: hash every input, drop exact duplicates, assign keys, splits and chunks."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from .config import DownloadConfig, SplitConfig
from .fetch import FetchError
from .sources import InputItem, read_bytes

SPLITS = ("train", "val", "test")


def source_id_of(sha256: str) -> str:
    """A real image's id (and key): 16 hex digits of its bytes' sha256 — stable under append and reorder."""
    return sha256[:16]


def assign_split(group_id: str, cfg: SplitConfig) -> str:
    """Deterministic split from a hash of the group id, so everything derived from a source shares it."""
    h = hashlib.sha256(f"{cfg.seed}:{group_id}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    if u < cfg.train:
        return "train"
    if u < cfg.train + cfg.val:
        return "val"
    return "test"


def _hash_item(item: InputItem, download: DownloadConfig | None = None) -> tuple[str | None, str | None]:
    if item.error:
        return None, item.error
    try:
        return hashlib.sha256(read_bytes(item, download)).hexdigest(), None
    except FetchError as e:
        return None, f"{e.reason}: {e.detail}"
    except FileNotFoundError:
        return None, f"missing: no such file {item.file}"
    except OSError as e:
        return None, f"read_error: {e}"
    except Exception as e:  # object storage: missing credentials, bad endpoint... are that input's failure
        if "://" not in item.file:
            raise
        return None, (f"read_error: cannot read '{item.file}': {type(e).__name__}: {e}. Check the credentials and "
                      "endpoint (for S3: AWS_* variables or ~/.aws, AWS_ENDPOINT_URL)")


def hash_inputs(items: list[InputItem], threads: int = 8,
                download: DownloadConfig | None = None) -> list[tuple[str | None, str | None]]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda item: _hash_item(item, download), items, chunksize=64))


def make_plan(
    items: list[InputItem],
    hashes: list[tuple[str | None, str | None]],
    existing: dict[str, str],
    split_cfg: SplitConfig,
    chunk_size: int,
    first_chunk: int,
) -> list[dict]:
    """One row per input: its chunk, key, split, and why it is skipped (duplicate / unreadable) if so.

    `existing` maps source sha256 -> input path of samples already in the dataset.
    """
    seen = dict(existing)
    rows = []
    for order, (item, (sha, error)) in enumerate(zip(items, hashes)):
        row = asdict(item)
        row.update(order=order, chunk=first_chunk + order // chunk_size, source_sha256=sha,
                   key=None, split=None, group_id=None, duplicate_of=None, error=error)
        if sha is not None:
            if sha in seen:
                row["duplicate_of"] = seen[sha]
            else:
                seen[sha] = item.input_path
                key = source_id_of(sha)
                group = item.group or key
                row.update(key=key, group_id=group, split=assign_split(group, split_cfg))
        rows.append(row)
    return rows
