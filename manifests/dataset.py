"""A dataset folder and its on-disk contract: paths, the writers' lock, runs, tables, queries, done markers.

Every other package reaches a dataset's files through `Dataset` (or the names in `aig.manifests.layout`).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import catalog
from .errors import AigError
from .layout import DatasetLayout, atomic_write
from .schema import TABLES, parquet_bytes, read_parquet, to_table


class DatasetBusy(AigError, RuntimeError):
    """Another aig command holds the dataset's lock."""


class Dataset(DatasetLayout):
    """A dataset folder: `Dataset(root)`; the folder need not exist until something is written."""

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Held while a command writes the dataset (build-data, label-semantic); DatasetBusy if another does."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DatasetBusy(f"another `aig build-data` or `aig label-semantic` is writing '{self.root}'; "
                                  "wait for it to finish") from None
            yield

    # -- tables ----------------------------------------------------------------------------------------
    def read_table(self, table: str, columns: list[str] | None = None) -> list[dict]:
        """Every row of a manifest table (straight from its Parquet files, no catalog needed)."""
        import pyarrow.parquet as pq

        rows: list[dict] = []
        for f in self.table_files(table):  # a column added since an older file was written is missing there
            cols = [c for c in columns if c in pq.read_schema(f).names] if columns else None
            rows += read_parquet(f, cols).to_pylist()
        return rows

    def write_table(self, table: str, name: str, rows: list[dict]) -> Path:
        """One file `name` of a manifest table, with exactly the table's schema (atomic)."""
        path = self.table_file(table, name)
        atomic_write(path, parquet_bytes(to_table(TABLES[table], rows)))
        return path

    # -- runs ------------------------------------------------------------------------------------------
    @property
    def runs(self) -> list[dict]:
        return self.read_table("runs")

    def new_run_id(self) -> str:
        return f"run-{len(self.runs) + 1:04d}"

    def write_run(self, row: dict) -> None:
        self.write_table("runs", row["run_id"], [row])

    # -- done markers: a chunk is finished when its marker exists (written last) -------------------------
    def done_markers(self) -> dict[str, dict]:
        """Chunk name -> its done marker, for every finished chunk."""
        return {p.stem: json.loads(p.read_text()) for p in sorted(self.done_dir.glob("*.json"))}

    def mark_done(self, chunk: str, stats: dict) -> None:
        atomic_write(self.done_path(chunk), json.dumps(stats, indent=1, sort_keys=True).encode())

    # -- the catalog -----------------------------------------------------------------------------------
    def refresh_catalog(self) -> Path:
        """(Re)create the catalog's views over the manifest."""
        return catalog.refresh_catalog(self.root)

    def connect(self):
        """A sandboxed read-only DuckDB connection over the catalog's views."""
        return catalog.connect_readonly(self.root)

    def query(self, sql: str, params: list | None = None) -> list[dict]:
        """Read-only SQL over the catalog with `?` placeholders for `params`, as a list of dicts."""
        return catalog.query_rows(self.root, sql, params)
