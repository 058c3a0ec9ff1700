"""`aig verify`: every manifest row resolves to its tar member; shards, indexes and done markers agree."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pyarrow.parquet as pq

from manifests.schema import table_dir

from . import layout


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _members(path: Path) -> dict[str, tuple[int, int]]:
    with tarfile.open(path, mode="r:") as tf:
        return {m.name: (m.offset_data, m.size) for m in tf if m.isfile()}


def verify_dataset(root: Path) -> list[str]:
    """Return a list of problems (empty when the dataset is consistent)."""
    problems: list[str] = []
    if not layout.is_dataset(root):
        return [f"'{root}' is not an aig dataset (no manifest/ folder)"]
    markers = layout.done_markers(root)
    listed: dict[str, dict] = {}
    for chunk, marker in markers.items():
        for s in marker["shards"]:
            listed[s["path"]] = s
        for table in ("samples", "failures"):
            if not (table_dir(root, table) / f"{chunk}.parquet").is_file():
                problems.append(f"chunk {chunk}: done marker present but {table} table file missing")
    for table in ("samples", "failures"):
        for f in table_dir(root, table).glob("*.parquet"):
            if f.stem not in markers:
                problems.append(f"{f.relative_to(root)}: no done marker (unfinished chunk: re-run build-data)")
    on_disk = {p.relative_to(root).as_posix() for p in layout.all_tars(root)}
    for rel in sorted(on_disk - listed.keys()):
        problems.append(f"{rel}: tar on disk but in no done marker")
    members: dict[str, dict[str, tuple[int, int]]] = {}
    for rel, s in sorted(listed.items()):
        path = root / rel
        if rel not in on_disk:
            problems.append(f"{rel}: shard missing (listed by its done marker)")
            continue
        if path.stat().st_size != s["bytes"]:
            problems.append(f"{rel}: size {path.stat().st_size} != {s['bytes']} recorded (truncated or appended?)")
        elif _sha256_file(path) != s["sha256"]:
            problems.append(f"{rel}: sha256 differs from the done marker (corrupted)")
        try:
            members[rel] = _members(path)
        except (tarfile.TarError, OSError) as e:
            problems.append(f"{rel}: unreadable tar ({e})")
            continue
        index = layout.index_path(path)
        if not index.is_file():
            problems.append(f"{index.relative_to(root)}: index missing")
        elif set(pq.read_table(index, columns=["member"])["member"].to_pylist()) != set(members[rel]):
            problems.append(f"{index.relative_to(root)}: index members differ from the tar's")
    problems += _check_samples(root, members)
    for tmp in layout.temp_files(root):
        problems.append(f"{tmp.relative_to(root)}: leftover temporary file (re-run build-data to clean up)")
    return problems


def _check_samples(root: Path, members: dict[str, dict[str, tuple[int, int]]]) -> list[str]:
    problems = []
    cols = ["key", "shard", "member", "offset_data", "size", "sha256"]
    for f in sorted(table_dir(root, "samples").glob("*.parquet")):
        for row in pq.read_table(f, columns=cols).to_pylist():
            where = f"sample {row['key']} ({row['shard']}:{row['member']})"
            tar = members.get(row["shard"])
            if tar is None:
                problems.append(f"{where}: its shard is missing or unreadable")
                continue
            if tar.get(row["member"]) != (row["offset_data"], row["size"]):
                problems.append(f"{where}: member missing or at another offset/size than the manifest says")
                continue
            with open(root / row["shard"], "rb") as fh:
                fh.seek(row["offset_data"])
                data = fh.read(row["size"])
            if hashlib.sha256(data).hexdigest() != row["sha256"]:
                problems.append(f"{where}: sha256 mismatch")
    return problems
