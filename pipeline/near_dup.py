"""Near-duplicate inputs: a perceptual hash per image, and groups of images whose hashes are close.

Re-encoded, resized or slightly cropped copies of one photo have pHashes a few bits apart; grouping
them before splits are assigned keeps every copy in one split (no test-set leakage). Grouping is a pure
function of the set of hashes (connected components), so it does not depend on input order.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

HASH_BITS = 64  # imagehash.phash with its default hash_size 8
MODES = ("group", "drop", "off")


def perceptual_hash(data: bytes, max_pixels: int) -> tuple[str, int] | None:
    """(pHash as 16 hex digits, pixel count) of an image file; None when it does not decode (ingest says why).

    JPEGs decode at reduced scale (DCT scaling, down to 1/8): the hash only looks at a 32x32 thumbnail.
    """
    import imagehash
    from PIL import Image, ImageOps

    from .decode import ALLOWED_FORMATS, _to_rgb

    Image.MAX_IMAGE_PIXELS = max_pixels  # as decode_image does: the exact check below decides
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            w, h = img.size
            if w * h > max_pixels or getattr(img, "n_frames", 1) > 1:
                return None  # ingest rejects it (too_large / animated); never decode a bomb here
            img.draft("RGB", (32, 32))  # JPEG only (decodes at 1/2..1/8 scale); a no-op for other formats
            rgb = _to_rgb(ImageOps.exif_transpose(img))
            if min(rgb.size) >= 128:  # box-reduce first (cheap): the hash resamples to 32x32 anyway
                rgb = rgb.reduce(min(rgb.size) // 64)
            return str(imagehash.phash(rgb)), w * h
    except Exception:  # any decode problem: not hashed, and ingest records the real reason
        return None


def close_pairs(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose 64-bit hashes differ in at most `max_distance` bits.

    Multi-index hashing: split the bits into max_distance + 1 blocks; two hashes that close agree
    exactly on at least one block (pigeonhole), so only hashes sharing a block value are compared.
    """
    n = len(hashes)
    if n < 2:
        return []
    blocks = min(max_distance + 1, HASH_BITS)
    edges = np.linspace(0, HASH_BITS, blocks + 1).astype(int)
    found: set[tuple[int, int]] = set()
    for lo, hi in zip(edges[:-1], edges[1:]):
        part = (hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        order = np.argsort(part, kind="stable")
        values = part[order]
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts, ends):
            if e - s < 2:
                continue
            idx = np.sort(order[s:e])
            sub = hashes[idx]
            for t in range(0, len(idx) - 1, 256):  # 256 rows at a time against the whole bucket
                d = np.bitwise_count(sub[t:t + 256, None] ^ sub[None, :])
                rows, cols = np.nonzero(d <= max_distance)
                keep = cols > rows + t
                found.update(zip(idx[rows[keep] + t].tolist(), idx[cols[keep]].tolist()))
    return sorted(found)


@dataclass(frozen=True)
class Member:
    """One image taking part in grouping: a sample already in the dataset, or a new input."""

    key: str
    phash: str | None
    label: str  # the split unit it names already: its group_id, a list's group, else its key
    rank: tuple  # lower ranks first: existing samples, then most pixels, most bytes, smallest key


@dataclass(frozen=True)
class Grouped:
    group_id: str  # split unit after merging near-duplicates (and the inputs' own groups)
    near_dup_of: str | None  # key of its near-duplicate group's first member; None for that member / no copies


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _best(uf: _UnionFind, members: list[Member]) -> dict[int, int]:
    """Component root -> index of its first member (lowest rank)."""
    best: dict[int, int] = {}
    for i, m in enumerate(members):
        r = uf.find(i)
        if r not in best or m.rank < members[best[r]].rank:
            best[r] = i
    return best


def group_members(members: list[Member], max_distance: int) -> list[Grouped]:
    """Merge near-duplicates (pHash within max_distance bits) and members sharing a label into groups.

    A group's id is its first member's label; `near_dup_of` names the first member of the near-duplicate
    component (near-duplicate links only). Order of `members` does not change the result.
    """
    n = len(members)
    hashed = [i for i, m in enumerate(members) if m.phash]
    values = np.array([int(members[i].phash, 16) for i in hashed], dtype=np.uint64)
    near, split_unit = _UnionFind(n), _UnionFind(n)
    for a, b in close_pairs(values, max_distance):
        near.union(hashed[a], hashed[b])
        split_unit.union(hashed[a], hashed[b])
    by_label: dict[str, int] = {}
    for i, m in enumerate(members):
        split_unit.union(by_label.setdefault(m.label, i), i)
    first_near, first_unit = _best(near, members), _best(split_unit, members)
    out = []
    for i, m in enumerate(members):
        rep = first_near[near.find(i)]
        out.append(Grouped(group_id=members[first_unit[split_unit.find(i)]].label,
                           near_dup_of=members[rep].key if rep != i else None))
    return out
