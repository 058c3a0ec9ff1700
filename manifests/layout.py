"""Where everything lives inside a dataset folder: names at its root, paths under it, atomic writes.

`DatasetLayout` is the path half of `aig.manifests.dataset.Dataset` (kept apart so that the catalog, which
`Dataset` uses for queries, can find its files without importing `Dataset`).
"""

from __future__ import annotations

import os
from pathlib import Path

MANIFEST_DIR = "manifest"  # one folder per table (samples, failures, runs, ...), plus done/ and plans/
CATALOG_FILE = "catalog.duckdb"
INFO_FILE = "info.json"
SHARDS_DIR = "shards"
INDEX_DIR = "index"
DONE_DIR = "done"  # under MANIFEST_DIR: one JSON marker per finished chunk
PLANS_DIR = "plans"  # under MANIFEST_DIR: one Parquet plan per build run
LOCK_FILE = ".aig.lock"
CARD_FILE = "README.md"  # the dataset card (Hugging Face datasets reads its configs)
REPORT_FILE = "report.html"
EVAL_DIR = "eval"  # plots and results.md of each evaluation
# Everything aig writes at a dataset's root (--overwrite deletes these and nothing else).
OWN_NAMES = (SHARDS_DIR, INDEX_DIR, MANIFEST_DIR, CATALOG_FILE, CATALOG_FILE + ".wal", INFO_FILE, CARD_FILE, LOCK_FILE,
             REPORT_FILE, EVAL_DIR)


def chunk_name(group: str, chunk: int) -> str:
    return f"{group}-{chunk:06d}"


def index_rel(tar_rel: str) -> str:
    """A shard's member index, in index/ (mirroring shards/, where folder loaders such as HF datasets
    do not mistake it for data): shards/G/S/X.tar -> index/G/S/X.index.parquet."""
    rel = tar_rel[len(SHARDS_DIR) + 1:] if tar_rel.startswith(SHARDS_DIR + "/") else tar_rel
    return f"{INDEX_DIR}/{rel[: -len('.tar')]}.index.parquet"


def temp_path(path: Path) -> Path:
    """The temporary name a file is written under before its rename (hidden, per process)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, fsync, then rename into place.

    A failed write (e.g. a full disk) removes its temporary file, so it does not hold on to space.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class DatasetLayout:
    """The paths of a dataset folder (which need not exist yet, e.g. a worker's staging folder)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"

    # -- files and folders at the root -------------------------------------------------------------
    @property
    def manifest_dir(self) -> Path:
        return self.root / MANIFEST_DIR

    @property
    def catalog_path(self) -> Path:
        return self.root / CATALOG_FILE

    @property
    def info_path(self) -> Path:
        return self.root / INFO_FILE

    @property
    def card_path(self) -> Path:
        return self.root / CARD_FILE

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def report_path(self) -> Path:
        return self.root / REPORT_FILE

    @property
    def shards_dir(self) -> Path:
        return self.root / SHARDS_DIR

    @property
    def done_dir(self) -> Path:
        return self.manifest_dir / DONE_DIR

    # -- paths under the root ----------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        return self.manifest_dir / table

    def table_file(self, table: str, name: str) -> Path:
        return self.table_dir(table) / f"{name}.parquet"

    def table_files(self, table: str) -> list[Path]:
        return sorted(self.table_dir(table).glob("*.parquet"))

    def shard_path(self, group: str, split: str, chunk: int, part: int) -> Path:
        return self.shards_dir / group / split / f"{chunk_name(group, chunk)}-{part:02d}.tar"

    def group_dir(self, group: str) -> Path:
        return self.shards_dir / group

    def index_path(self, tar_path: Path) -> Path:
        return self.root / index_rel(tar_path.relative_to(self.root).as_posix())

    def done_path(self, chunk: str) -> Path:
        return self.done_dir / f"{chunk}.json"

    def plan_path(self, run_id: str) -> Path:
        return self.manifest_dir / PLANS_DIR / f"{run_id}.parquet"

    def eval_dir(self, eval_id: str) -> Path:
        return self.root / EVAL_DIR / eval_id

    def chunk_files(self, group: str) -> list[tuple[str, Path]]:
        """(chunk name, path) of each manifest table file and shard of `group`'s chunks."""
        tables = [(p.name.split(".")[0], p) for p in self.manifest_dir.glob(f"*/{group}-*.parquet")]
        shards = [(p.name.split(".")[0].rsplit("-", 1)[0], p) for p in self.group_dir(group).glob(f"*/{group}-*")]
        return tables + shards

    # -- paths relative to the root (object storage lists those) ------------------------------------
    @staticmethod
    def table_glob(table: str) -> str:
        return f"{MANIFEST_DIR}/{table}/*.parquet"

    @staticmethod
    def is_manifest_rel(rel: str) -> bool:
        return rel.startswith(MANIFEST_DIR + "/")

    @staticmethod
    def is_table_rel(rel: str, table: str) -> bool:
        return rel.startswith(f"{MANIFEST_DIR}/{table}/")

    @staticmethod
    def is_done_rel(rel: str) -> bool:
        return rel.startswith(f"{MANIFEST_DIR}/{DONE_DIR}/")

    @staticmethod
    def is_dataset_rel(rel: str) -> bool:
        """True for a file only a dataset has: a manifest file, info.json or the catalog."""
        return DatasetLayout.is_manifest_rel(rel) or rel in (INFO_FILE, CATALOG_FILE)

    @staticmethod
    def is_own(name: str) -> bool:
        """True for a root entry aig wrote: one of OWN_NAMES, or a temporary file of the catalog's."""
        return name in OWN_NAMES or name.startswith(f".{CATALOG_FILE}.tmp-")

    # -- what is there --------------------------------------------------------------------------------
    def is_dataset(self) -> bool:
        return self.manifest_dir.is_dir() or self.info_path.is_file() or self.catalog_path.is_file()

    def temp_files(self) -> list[Path]:
        return sorted(p for p in self.root.glob("**/.*.tmp-*") if p.is_file())

    def foreign_entries(self) -> list[Path]:
        """Entries at the root that aig did not write (sorted)."""
        return sorted(p for p in self.root.iterdir() if not self.is_own(p.name)) if self.root.is_dir() else []

