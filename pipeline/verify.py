"""`aig verify`: every manifest row resolves to its tar member; shards, indexes and done markers agree."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pyarrow.parquet as pq

from manifests.schema import table_dir

from . import layout, storage


def _sha256_file(files, rel: str) -> str:
    h = hashlib.sha256()
    with files.open(rel) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _members(files, rel: str) -> dict[str, tuple[int, int]]:
    with files.open(rel) as f, tarfile.open(fileobj=f, mode="r:") as tf:
        return {m.name: (m.offset_data, m.size) for m in tf if m.isfile()}


def verify_dataset(location: str | Path) -> list[str]:
    """Return a list of problems (empty when the dataset is consistent). `location`: a folder or a URL."""
    root = storage.local_view(location)  # manifest files: the folder itself, or a local mirror of the URL's
    if not layout.is_dataset(root):
        return [f"'{location}' is not an aig dataset (no manifest/ folder)"]
    return _verify(root, storage.dataset_files(location, root))


def _verify(root: Path, files) -> list[str]:
    problems: list[str] = []
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
    on_disk = set(files.tars())
    for rel in sorted(on_disk - listed.keys()):
        problems.append(f"{rel}: tar on disk but in no done marker")
    members: dict[str, dict[str, tuple[int, int]]] = {}
    for rel, s in sorted(listed.items()):
        if rel not in on_disk:
            problems.append(f"{rel}: shard missing (listed by its done marker)")
            continue
        if files.size(rel) != s["bytes"]:
            problems.append(f"{rel}: size {files.size(rel)} != {s['bytes']} recorded (truncated or appended?)")
        elif _sha256_file(files, rel) != s["sha256"]:
            problems.append(f"{rel}: sha256 differs from the done marker (corrupted)")
        try:
            members[rel] = _members(files, rel)
        except (tarfile.TarError, OSError) as e:
            problems.append(f"{rel}: unreadable tar ({e})")
            continue
        index = layout.index_rel(rel)
        if not files.exists(index):
            problems.append(f"{index}: index missing")
        else:
            with files.open(index) as f:
                if set(pq.read_table(f, columns=["member"])["member"].to_pylist()) != set(members[rel]):
                    problems.append(f"{index}: index members differ from the tar's")
    problems += _check_samples(root, files, members)
    for tmp in files.temp_files():
        problems.append(f"{tmp}: leftover temporary file (re-run build-data to clean up)")
    return problems


def _check_samples(root: Path, files, members: dict[str, dict[str, tuple[int, int]]]) -> list[str]:
    problems = []
    cols = ["key", "shard", "member", "offset_data", "size", "sha256"]
    by_shard: dict[str, list[dict]] = {}
    for f in sorted(table_dir(root, "samples").glob("*.parquet")):
        for row in pq.read_table(f, columns=cols).to_pylist():
            where = f"sample {row['key']} ({row['shard']}:{row['member']})"
            tar = members.get(row["shard"])
            if tar is None:
                problems.append(f"{where}: its shard is missing or unreadable")
            elif tar.get(row["member"]) != (row["offset_data"], row["size"]):
                problems.append(f"{where}: member missing or at another offset/size than the manifest says")
            else:
                by_shard.setdefault(row["shard"], []).append(row)
    for shard, rows in sorted(by_shard.items()):
        with files.open(shard) as fh:  # one open per shard (on object storage each open is a request)
            for row in rows:
                fh.seek(row["offset_data"])
                if hashlib.sha256(fh.read(row["size"])).hexdigest() != row["sha256"]:
                    problems.append(f"sample {row['key']} ({row['shard']}:{row['member']}): sha256 mismatch")
    return problems
