"""Deterministic WebDataset tar writing: sorted members, fixed mtime, temp name + rename, Parquet index."""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from aig.manifests.layout import atomic_write

from .storage import read_range

MTIME = 0  # fixed, so the same samples give byte-identical tars
IMAGE_MEMBERS = ("png", "jpg", "jpeg", "webp")  # the image member a stored sample may have


def image_member(sample: dict) -> bytes:
    """The image bytes of a webdataset sample dict, whichever image member it has (KeyError if none)."""
    for ext in IMAGE_MEMBERS:
        if ext in sample:
            return sample[ext]
    raise KeyError(f"{sample.get('__key__', '?')}: no image member ({', '.join(IMAGE_MEMBERS)})")


@dataclass(frozen=True)
class Sample:
    key: str
    members: dict[str, bytes]  # extension -> bytes, e.g. {"png": ..., "json": ...}

    @property
    def nbytes(self) -> int:
        return sum(len(v) for v in self.members.values())


@dataclass(frozen=True)
class MemberEntry:
    key: str
    member: str
    offset_data: int
    size: int
    sha256: str


@dataclass(frozen=True)
class WrittenShard:
    path: Path
    entries: list[MemberEntry]
    nbytes: int
    sha256: str


def check_key(key: str) -> None:
    if not key or "." in key or "/" in key:
        raise ValueError(f"invalid sample key {key!r}: keys must be non-empty without dots or slashes")


def group_into_shards(samples: list[Sample], max_samples: int, max_bytes: int) -> list[list[Sample]]:
    """Split key-sorted samples into shards bounded by sample count and (approximate) bytes."""
    shards: list[list[Sample]] = []
    current: list[Sample] = []
    size = 0
    for s in sorted(samples, key=lambda s: s.key):
        cost = s.nbytes + 1024 * len(s.members)
        if current and (len(current) >= max_samples or size + cost > max_bytes):
            shards.append(current)
            current, size = [], 0
        current.append(s)
        size += cost
    if current:
        shards.append(current)
    return shards


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def tar_bytes(samples: list[Sample]) -> tuple[bytes, list[MemberEntry]]:
    """Build the tar in memory; returns its bytes and one index entry per member."""
    buf = io.BytesIO()
    entries = []
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for s in sorted(samples, key=lambda s: s.key):
            check_key(s.key)
            for ext in sorted(s.members):
                data = s.members[ext]
                name = f"{s.key}.{ext}"
                tf.addfile(_tar_info(name, len(data)), io.BytesIO(data))
                entries.append(MemberEntry(s.key, name, tf.offset - _padded(len(data)), len(data),
                                           hashlib.sha256(data).hexdigest()))
    return buf.getvalue(), entries


def _padded(n: int) -> int:
    return (n + 511) // 512 * 512


def is_disk_full(e: BaseException | None) -> bool:
    """True for ENOSPC/EDQUOT, also when wrapped (a Ray task error's cause, or an exception's __cause__)."""
    import errno

    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e) or "Disk quota exceeded" in str(e):
            return True
        e = getattr(e, "cause", None) or e.__cause__
        seen += 1
    return False


def write_shard(path: Path, samples: list[Sample]) -> WrittenShard:
    data, entries = tar_bytes(samples)
    atomic_write(path, data)
    return WrittenShard(path, entries, len(data), hashlib.sha256(data).hexdigest())


def index_table(entries: list[MemberEntry]):
    import pyarrow as pa

    return pa.table({
        "key": pa.array([e.key for e in entries], pa.string()),
        "member": pa.array([e.member for e in entries], pa.string()),
        "offset_data": pa.array([e.offset_data for e in entries], pa.int64()),
        "size": pa.array([e.size for e in entries], pa.int64()),
        "sha256": pa.array([e.sha256 for e in entries], pa.string()),
    })


def read_member(root: str | Path, row: dict) -> bytes:
    """A sample's bytes, read straight from its tar with the manifest row's shard, offset and size
    (`root`: a dataset folder or URL)."""
    data = read_range(root, row["shard"], row["offset_data"], row["size"])
    if len(data) != row["size"]:
        raise OSError(f"{row['shard']}: member {row['member']} is truncated; run `aig verify {root}`")
    return data


def missing_shard(root: Path, shards) -> str | None:
    """The message for the first of `shards` (paths relative to root) that is not on disk, else None."""
    missing = sorted(rel for rel in set(shards) if not (root / rel).is_file())
    if not missing:
        return None
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return f"shard {missing[0]}{more} listed in the catalog is missing under {root}; run `aig verify {root}`"
