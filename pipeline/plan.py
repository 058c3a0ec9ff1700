"""Plan a run: hash every input, drop exact duplicates, group near-duplicates, assign keys, splits and chunks."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from .config import DownloadConfig, SplitConfig
from .fetch import FetchError
from .near_dup import HASH_BITS, Member, group_members, perceptual_hash
from .sources import InputItem, fetch_input

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


Hashes = tuple[str | None, str | None, tuple[str, int, int] | None]  # sha256, error, (pHash, pixels, bytes)


def _hash_item(item: InputItem, max_pixels: int | None = None, download: DownloadConfig | None = None) -> Hashes:
    """sha256 of the input's bytes; with max_pixels, also its perceptual hash (near-duplicate grouping)."""
    if item.error:
        return None, item.error, None
    try:
        data = fetch_input(item, download)
    except FetchError as e:
        return None, f"{e.reason}: {e.detail}", None
    except FileNotFoundError:
        return None, f"missing: no such file {item.file}", None
    except OSError as e:
        return None, f"read_error: {e}", None
    except Exception as e:  # object storage: missing credentials, bad endpoint... are that input's failure
        if "://" not in item.file:
            raise
        return None, (f"read_error: cannot read '{item.file}': {type(e).__name__}: {e}. Check the credentials and "
                      "endpoint (for S3: AWS_* variables or ~/.aws, AWS_ENDPOINT_URL)"), None
    ph = perceptual_hash(data, max_pixels) if max_pixels else None
    return hashlib.sha256(data).hexdigest(), None, (*ph, len(data)) if ph else None


def hash_inputs(items: list[InputItem], threads: int = 8, max_pixels: int | None = None,
                download: DownloadConfig | None = None) -> list[Hashes]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda i: _hash_item(i, max_pixels, download), items, chunksize=64))


def make_plan(
    items: list[InputItem],
    hashes: list[Hashes],
    existing: list[dict],
    split_cfg: SplitConfig,
    chunk_size: int,
    first_chunk: int,
    near_dup: str = "off",
    max_distance: int = 10,
) -> list[dict]:
    """One row per input: its chunk, key, split, and why it is skipped (duplicate / unreadable) if so.

    `existing`: rows (source_sha256, input_path, key, group_id, phash) of real samples already in the dataset.
    near_dup: group (near-duplicates share a group, hence a split), drop (they fail as near_duplicate), off.
    """
    seen = {r["source_sha256"]: r["input_path"] for r in existing}
    rows = []
    for order, (item, (sha, error, ph)) in enumerate(zip(items, hashes)):
        row = asdict(item)
        row.update(order=order, chunk=first_chunk + order // chunk_size, source_sha256=sha,
                   key=None, split=None, group_id=None, duplicate_of=None, error=error,
                   phash=ph[0] if ph else None, near_dup_of=None, near_dup_input=None)
        if sha is not None:
            if sha in seen:
                row["duplicate_of"] = seen[sha]
            else:
                seen[sha] = item.input_path
                key = source_id_of(sha)
                group = item.group or key
                row.update(key=key, group_id=group, split=assign_split(group, split_cfg))
        rows.append(row)
    if near_dup != "off":
        _group_near_duplicates(rows, [ph for _, _, ph in hashes], existing, split_cfg, near_dup, max_distance)
    return rows


def _rank(key: str, ph: tuple | None) -> tuple:
    """A new input's place in its group: the copy with most pixels, then most bytes, comes first."""
    return (1, -ph[1], -ph[2], key) if ph else (2, 0, 0, key)  # samples already stored rank 0


def _group_near_duplicates(rows: list[dict], hashes: list, existing: list[dict], split_cfg: SplitConfig,
                           mode: str, max_distance: int) -> None:
    """Merge each new sample's group with its near-duplicates' (existing samples first); drop copies if asked."""
    new = [(r, ph) for r, ph in zip(rows, hashes) if r["key"]]
    members = [Member(r["key"], r.get("phash"), r["group_id"] or r["key"], (0, 0, 0, r["key"])) for r in existing]
    members += [Member(r["key"], r["phash"], r["group_id"], _rank(r["key"], ph)) for r, ph in new]
    path_of = {r["key"]: r["input_path"] for r in existing} | {r["key"]: r["input_path"] for r, _ in new}
    phash_of = {m.key: m.phash for m in members}
    for (row, _), g in zip(new, group_members(members, max_distance)[len(existing):]):
        row.update(group_id=g.group_id, split=assign_split(g.group_id, split_cfg), near_dup_of=g.near_dup_of,
                   near_dup_input=path_of[g.near_dup_of] if g.near_dup_of else None)
        if mode == "drop" and g.near_dup_of:
            bits = bin(int(row["phash"], 16) ^ int(phash_of[g.near_dup_of], 16)).count("1")
            row.update(key=None, split=None, group_id=None, error=(
                f"near_duplicate: a near-duplicate of {row['near_dup_input']} (kept; perceptual hashes "
                f"{bits} of {HASH_BITS} bits apart)"))
