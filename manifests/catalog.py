"""The DuckDB catalog at the dataset root: views over the manifest Parquet, and read-only SQL."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import AigError
from .layout import DatasetLayout, temp_path
from .schema import DUCKDB_TYPES, TABLES

class CatalogError(AigError, RuntimeError):
    """The catalog or a query cannot be used; the message says why and what to do."""


def _same_schema(files: list[Path]) -> bool:
    """True when every file has the same columns and types (read from the Parquet footers)."""
    import pyarrow.parquet as pq

    first = pq.read_schema(files[0])
    return all(pq.read_schema(f).equals(first) for f in files[1:])


def _view_sql(root: Path, table: str, columns) -> str:
    files = DatasetLayout(root).table_files(table)
    if files:
        # Absolute paths: plain `duckdb.connect(catalog)` works from any working directory; a moved dataset
        # is re-pointed by the next `aig` command (connect_readonly).
        pattern = _sql_str(DatasetLayout(root.resolve()).table_dir(table) / "*.parquet")
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

    path = DatasetLayout(root).catalog_path
    tmp = temp_path(path)
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
    prefix = f"read_parquet('{_sql_str(DatasetLayout(root.resolve()).manifest_dir)}/"
    return any("read_parquet('" in sql and prefix not in sql for sql in view_sqls)


def _sql_str(p: Path) -> str:
    """A path as the body of an SQL string literal: only for view definitions, which take no parameters."""
    return str(p).replace("'", "''")


def connect_readonly(root: Path):
    """A connection to the catalog that can read the dataset folder and nothing else, and write nothing.

    A catalog whose views point elsewhere (the dataset was moved or copied) is re-pointed first. DuckDB then
    enforces the limits: the catalog opens read-only, without extension auto-install/-load and without a
    spill folder; the views are used as temporary views; external access is limited to the dataset folder
    (no other file, no network), and the configuration is locked.
    """
    import duckdb

    path = DatasetLayout(root).catalog_path
    if not path.is_file():
        raise CatalogError(f"no catalog at '{path}': build a dataset there first with `aig build-data --output {root}`")
    absolute = root.resolve()
    settings = {"autoinstall_known_extensions": False, "autoload_known_extensions": False, "temp_directory": ""}
    try:
        con = duckdb.connect(str(path), read_only=True, config=settings)
    except duckdb.Error as e:
        raise CatalogError(f"catalog '{path}' is damaged ({str(e).splitlines()[0]}); re-run the same "
                           "`aig build-data` command to rebuild it (nothing is ingested twice)") from None
    try:
        views = con.execute("select view_name, sql from duckdb_views() where not internal "
                            "and database_name = current_database() and schema_name = 'main'").fetchall()
        if points_elsewhere([sql for _, sql in views], root):
            con.close()
            try:
                refresh_catalog(root)
                con = duckdb.connect(str(path), read_only=True, config=settings)
            except (OSError, duckdb.IOException):  # a read-only copy: the same views, in memory
                con = duckdb.connect(config=settings)
                _create_views(con, root)
            views = con.execute("select view_name, sql from duckdb_views() where not internal "
                                "and schema_name = 'main'").fetchall()
        for name, sql in views:
            if not sql.upper().startswith(f"CREATE VIEW {name.upper()} AS "):
                raise CatalogError(f"the catalog '{path}' holds an unexpected view {name!r}: "
                                   f"re-create it with `aig build-data --output {root}`")
            con.execute("CREATE OR REPLACE TEMPORARY VIEW" + sql[len("CREATE VIEW"):])
        con.execute("set allowed_directories = ?", [[f"{absolute}/"]])
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def damaged_file_error(root: Path, e: Exception) -> CatalogError:
    """A query that failed on a damaged manifest file: name the file and what to do."""
    msg = str(e).splitlines()[0]
    found = re.search(r"""['"]([^'"]+\.parquet)['"]""", msg)
    what = f"manifest file '{found.group(1)}' is damaged" if found else "reading the manifest failed"
    return CatalogError(f"{what} ({msg}); run `aig verify {root}` to list every damaged file, and restore "
                        "them from a copy")


_EXPLAIN = re.compile(r"\s*explain\s+(analyze\s+|\([^)]*\)\s*)?", re.IGNORECASE)


def check_read_only(con, query: str) -> str:
    """The one SELECT (or EXPLAIN of a SELECT) in `query`, or a CatalogError saying what is refused.

    A second line behind the connection's own limits: those keep DuckDB out of everything but the dataset
    folder, but DuckDB could still write there (COPY ... TO a manifest file), which only this check stops.
    """
    statements = _parse(con, query)
    if not statements:
        raise CatalogError("empty query")
    for st in statements:
        kind = st.type.name
        if kind == "EXPLAIN":
            m = _EXPLAIN.match(st.query)
            inner = _parse(con, st.query[m.end():]) if m else []
            kind = "EXPLAIN " + (inner[0].type.name if len(inner) == 1 else "?")
        if kind not in ("SELECT", "EXPLAIN SELECT"):
            raise CatalogError(
                f"refusing {kind}: `aig sql` is read-only (allowed: SELECT, EXPLAIN SELECT; see tables with "
                "DESCRIBE or SHOW TABLES). To export results use --format csv|json|parquet --output FILE."
            )
    if len(statements) > 1:
        raise CatalogError(f"{len(statements)} statements: `aig sql` runs one statement per call "
                           "(drop the ';' between them, or run them one by one)")
    return statements[0].query


def _parse(con, query: str) -> list:
    try:
        return con.extract_statements(query)
    except Exception as e:  # duckdb.ParserException and friends
        raise CatalogError(f"SQL does not parse: {e}") from None


def open_query(root: Path, query: str):
    """A sandboxed connection to the dataset's catalog and the checked statement: (connection, sql)."""
    con = connect_readonly(root)
    try:
        return con, check_read_only(con, query)
    except BaseException:
        con.close()
        raise


def run_query(root: Path, query: str, params: list | None = None):
    """Run read-only SQL (with `?` placeholders for `params`) against the dataset's catalog; returns (connection, relation)."""
    con, sql = open_query(root, query)
    try:
        return con, con.sql(sql, params=params)
    except BaseException:
        con.close()
        raise


def query_rows(root: Path, query: str, params: list | None = None) -> list[dict]:
    """Read-only SQL (with `?` placeholders for `params`) against the catalog, as a list of dicts."""
    con, rel = run_query(root, query, params)
    try:
        cols = rel.columns
        return [dict(zip(cols, r)) for r in rel.fetchall()]
    finally:
        con.close()
