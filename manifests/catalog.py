"""The DuckDB catalog at the dataset root: views over the manifest Parquet, and read-only SQL."""

from __future__ import annotations

import os
from pathlib import Path

from .schema import CATALOG_FILE, DUCKDB_TYPES, MANIFEST_DIR, TABLES

ALLOWED_STATEMENTS = ("SELECT", "EXPLAIN", "PRAGMA")


class CatalogError(RuntimeError):
    """The catalog or a query cannot be used; the message says why and what to do."""


def _same_schema(files: list[Path]) -> bool:
    """True when every file has the same columns and types (read from the Parquet footers)."""
    import pyarrow.parquet as pq

    first = pq.read_schema(files[0])
    return all(pq.read_schema(f).equals(first) for f in files[1:])


def _view_sql(root: Path, table: str, columns) -> str:
    files = sorted((root / MANIFEST_DIR / table).glob("*.parquet"))
    if files:
        # Absolute paths: plain `duckdb.connect(catalog)` works from any working directory; a moved dataset
        # is re-pointed by the next `aig` command (connect_readonly).
        pattern = _sql_str(root.resolve() / MANIFEST_DIR / table / "*.parquet")
        # union_by_name makes every query read all footers first (~1 s per 1,000 files): only when needed.
        union = "" if _same_schema(files) else ", union_by_name=true"
        return f"create or replace view {table} as select * from read_parquet('{pattern}'{union})"
    cols = ", ".join(f"null::{DUCKDB_TYPES[t]} as {name}" for name, t in columns)
    return f"create or replace view {table} as select {cols} where false"


def _create_views(con, root: Path) -> None:
    for table, columns in TABLES.items():
        con.execute(_view_sql(root, table, columns))
    con.execute(
        "create or replace view shards as select shard, split, count(*) as samples, sum(size) as bytes "
        "from samples group by all"
    )


def refresh_catalog(root: Path) -> Path:
    """(Re)create the catalog's views over the manifest, by absolute path."""
    import duckdb

    path = root / CATALOG_FILE
    tmp = root / f".{CATALOG_FILE}.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(tmp))
        try:
            _create_views(con, root)
            con.execute("checkpoint")  # close() swallows write errors (e.g. a full disk); checkpoint raises them
        finally:
            con.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. a full disk: do not keep a half-written catalog around
        tmp.with_name(tmp.name + ".wal").unlink(missing_ok=True)
        raise
    return path


def points_elsewhere(view_sqls: list[str], root: Path) -> bool:
    """True when a view reads Parquet outside `root`'s manifest (the dataset was moved or copied)."""
    prefix = f"read_parquet('{_sql_str(root.resolve() / MANIFEST_DIR)}/"
    return any("read_parquet('" in sql and prefix not in sql for sql in view_sqls)


def _sql_str(p: Path) -> str:
    return str(p).replace("'", "''")


def connect_readonly(root: Path):
    """A read-only connection to the catalog; re-points it first when the dataset has moved."""
    import duckdb

    path = root / CATALOG_FILE
    if not path.is_file():
        raise CatalogError(f"no catalog at '{path}': build a dataset there first with `aig build-data --output {root}`")
    con = duckdb.connect(str(path), read_only=True)
    views = [r[0] for r in con.execute("select sql from duckdb_views() where not internal").fetchall()]
    if not points_elsewhere(views, root):
        return con
    con.close()
    try:
        refresh_catalog(root)
    except OSError:  # a read-only copy: the same views, in memory
        con = duckdb.connect()
        _create_views(con, root)
        return con
    return duckdb.connect(str(path), read_only=True)


def check_read_only(con, query: str) -> None:
    try:
        statements = con.extract_statements(query)
    except Exception as e:  # duckdb.ParserException and friends
        raise CatalogError(f"SQL does not parse: {e}") from None
    if not statements:
        raise CatalogError("empty query")
    for st in statements:
        kind = st.type.name
        if kind not in ALLOWED_STATEMENTS:
            raise CatalogError(
                f"refusing a {kind} statement: `aig sql` is read-only (allowed: {', '.join(ALLOWED_STATEMENTS)}). "
                "To export results use --format csv|json|parquet --output FILE."
            )


def run_query(root: Path, query: str):
    """Run read-only SQL against the dataset's catalog; returns (connection, relation)."""
    con = connect_readonly(root)
    check_read_only(con, query)
    statements = con.extract_statements(query)
    for st in statements[:-1]:
        con.execute(st.query)
    return con, con.sql(statements[-1].query)


def query_rows(root: Path, query: str) -> list[dict]:
    """Read-only SQL against the catalog, as a list of dicts."""
    con, rel = run_query(root, query)
    try:
        cols = rel.columns
        return [dict(zip(cols, r)) for r in rel.fetchall()]
    finally:
        con.close()
