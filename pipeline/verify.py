"""`aig verify`: every manifest file reads; rows, tar members, indexes and done markers agree, both ways."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pyarrow as pa
from aig.manifests.dataset import Dataset
from aig.manifests.layout import CATALOG_FILE, MANIFEST_DIR, index_rel
from aig.manifests.schema import read_parquet

from . import storage

RESTORE = "restore it from a copy (it cannot be rebuilt from the shards)"
CHUNK_TABLES = ("samples", "failures")


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
    if not Dataset(root).is_dataset():
        return [f"'{location}' is not an aig dataset (no {MANIFEST_DIR}/ folder)"]
    return _verify(root, storage.dataset_files(location, root))


def _read_markers(root: Path, problems: list[str]) -> dict[str, dict]:
    markers = {}
    for p in sorted(Dataset(root).done_dir.glob("*.json")):
        try:
            m = json.loads(p.read_text())
            if not all(isinstance(m.get(k), int) for k in ("samples", "failures")) or \
                    not all({"path", "bytes", "sha256", "samples"} <= set(s) for s in m["shards"]):
                raise ValueError("fields missing")
            markers[p.stem] = m
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            problems.append(f"{p.relative_to(root)}: damaged done marker ({type(e).__name__}: {e}); {RESTORE}")
    return markers


def _read_tables(root: Path, problems: list[str]) -> dict[str, dict[str, pa.Table]]:
    """Every manifest Parquet file read whole; {table: {chunk: rows}} for the chunk tables."""
    tables: dict[str, dict[str, pa.Table]] = {t: {} for t in CHUNK_TABLES}
    manifest = Dataset(root).manifest_dir
    for f in sorted(manifest.rglob("*.parquet")):
        try:
            t = read_parquet(f)
        except (pa.ArrowException, OSError) as e:
            problems.append(f"{f.relative_to(root)}: damaged Parquet file ({str(e).splitlines()[0]}); {RESTORE}")
            continue
        if f.parent.name in tables and f.parent.parent == manifest:
            tables[f.parent.name][f.stem] = t
    return tables


def _check_catalog(root: Path) -> list[str]:
    from aig.manifests.catalog import CatalogError

    fix = "re-run the same `aig build-data` command to rebuild it (nothing is ingested twice)"
    if not Dataset(root).catalog_path.is_file():
        return [f"{CATALOG_FILE}: missing; {fix}"]
    try:
        con = Dataset(root).connect()
        try:
            con.execute("select count(*) from duckdb_views() where not internal").fetchall()
        finally:
            con.close()
    except CatalogError as e:
        return [str(e)]
    except Exception as e:  # duckdb.Error: the file opens but its contents are damaged
        return [f"{CATALOG_FILE}: damaged ({str(e).splitlines()[0]}); {fix}"]
    return []


def _verify(root: Path, files) -> list[str]:
    problems: list[str] = []
    ds = Dataset(root)
    markers = _read_markers(root, problems)
    tables = _read_tables(root, problems)
    problems += _check_catalog(root)
    listed: dict[str, dict] = {}
    for chunk, marker in markers.items():
        for s in marker["shards"]:
            listed[s["path"]] = s
        for table in CHUNK_TABLES:
            f = ds.table_file(table, chunk)
            if not f.is_file():
                problems.append(f"chunk {chunk}: done marker present but {table} table file missing")
            elif chunk in tables[table] and tables[table][chunk].num_rows != marker[table]:
                problems.append(f"{f.relative_to(root)}: {tables[table][chunk].num_rows} rows, its done marker "
                                f"counts {marker[table]} (rows lost or added); {RESTORE}")
    for table in CHUNK_TABLES:
        for f in ds.table_files(table):
            if f.stem not in markers:
                problems.append(f"{f.relative_to(root)}: no done marker (unfinished chunk: re-run build-data)")
    on_disk = set(files.tars())
    for rel in sorted(on_disk - listed.keys()):
        problems.append(f"{rel}: tar on disk but in no done marker")
    members: dict[str, dict[str, tuple[int, int]]] = {}
    keys: dict[str, set[str]] = {}  # shard -> sample keys its index names
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
        problems += _check_index(files, rel, members[rel], keys)
    samples = [t for _, t in sorted(tables["samples"].items())]
    problems += _check_samples(files, members, keys, listed, samples)
    for tmp in files.temp_files():
        problems.append(f"{tmp}: leftover temporary file (re-run build-data to clean up)")
    return problems


def _check_index(files, rel: str, members: dict[str, tuple[int, int]], keys: dict[str, set[str]]) -> list[str]:
    index = index_rel(rel)
    if not files.exists(index):
        return [f"{index}: index missing"]
    try:
        with files.open(index) as f:
            rows = read_parquet(f, ["key", "member", "offset_data", "size"]).to_pylist()
    except (pa.ArrowException, OSError, KeyError) as e:
        return [f"{index}: damaged Parquet file ({str(e).splitlines()[0]})"]
    keys[rel] = {r["key"] for r in rows}
    indexed = {r["member"]: (r["offset_data"], r["size"]) for r in rows}
    problems = [f"{rel}: member {m} is not in its index (orphan)" for m in sorted(members.keys() - indexed.keys())]
    problems += [f"{index}: member {m} is not in the tar" for m in sorted(indexed.keys() - members.keys())]
    problems += [f"{index}: member {m} at another offset/size than in the tar"
                 for m in sorted(indexed.keys() & members.keys()) if indexed[m] != members[m]]
    return problems


def _check_samples(files, members: dict[str, dict[str, tuple[int, int]]], keys: dict[str, set[str]],
                   listed: dict[str, dict], samples: list[pa.Table]) -> list[str]:
    problems = []
    cols = ["key", "shard", "member", "offset_data", "size", "sha256"]
    by_shard: dict[str, list[dict]] = {}
    rows_of: dict[str, set[str]] = {}
    for t in samples:
        if not set(cols) <= set(t.column_names):
            continue  # reported by the row counts (a table of another shape)
        for row in t.select(cols).to_pylist():
            rows_of.setdefault(row["shard"], set()).add(row["key"])
            where = f"sample {row['key']} ({row['shard']}:{row['member']})"
            tar = members.get(row["shard"])
            if tar is None:
                problems.append(f"{where}: its shard is missing or unreadable")
            elif tar.get(row["member"]) != (row["offset_data"], row["size"]):
                problems.append(f"{where}: member missing or at another offset/size than the manifest says")
            else:
                by_shard.setdefault(row["shard"], []).append(row)
    for shard, shard_keys in sorted(keys.items()):
        for key in sorted(shard_keys - rows_of.get(shard, set())):
            problems.append(f"{shard}: sample {key} has no row in the samples table (orphan member; rows lost?)")
        if len(rows_of.get(shard, ())) != listed[shard]["samples"]:
            problems.append(f"{shard}: {len(rows_of.get(shard, ()))} sample rows, its done marker counts "
                            f"{listed[shard]['samples']}")
    for shard, rows in sorted(by_shard.items()):
        with files.open(shard) as fh:  # one open per shard (on object storage each open is a request)
            for row in rows:
                fh.seek(row["offset_data"])
                if hashlib.sha256(fh.read(row["size"])).hexdigest() != row["sha256"]:
                    problems.append(f"sample {row['key']} ({row['shard']}:{row['member']}): sha256 mismatch")
    return problems
