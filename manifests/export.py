"""`aig sql`: a read-only query over a dataset's catalog, its result written batch by batch (bounded memory) as
table, csv, json or parquet."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import AigError

FORMATS = ("table", "csv", "json", "parquet")
BATCH_ROWS = 10_000


class QueryError(AigError):
    """The query cannot be answered; the message says why."""


@dataclass(kw_only=True)
class SqlOptions:
    query: str
    dataset: Path  # the dataset folder (a URL's local mirror)
    format: str = "table"
    output: Path | None = None  # required for parquet
    max_rows: int = 100  # rows the table format shows


def run_sql(options: SqlOptions) -> None:
    """Run the read-only query and write its result to `options.output` or stdout."""
    import duckdb

    from .catalog import open_query

    o = options
    problem = output_problem(o.format, o.output)
    if problem:
        raise QueryError(problem)
    try:
        con, statement = open_query(o.dataset, o.query)
    except duckdb.Error as e:
        raise QueryError(f"cannot open the catalog of {o.dataset}: {first_line(e)}") from None
    try:
        write_result(con, statement, o.format, o.output, o.max_rows)
    except duckdb.PermissionException as e:
        raise QueryError(f"query failed: {first_line(e)}: `aig sql` reads only files under {o.dataset.resolve()}") from None
    except duckdb.Error as e:
        raise QueryError(f"query failed: {first_line(e)}") from None
    finally:
        con.close()


def first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def output_problem(fmt: str, output: Path | None) -> str | None:
    """Why this format/output pair cannot be written (checked before the query runs), or None."""
    if fmt not in FORMATS:
        return f"--format {fmt!r} unknown; use {', '.join(FORMATS)}"
    if output is None:
        return "--format parquet needs --output FILE" if fmt == "parquet" else None
    if fmt == "table":
        return "--format table prints to the terminal; use --format csv, json or parquet with --output"
    if output.is_dir():
        return f"--output '{output}' is a folder; name a file (e.g. {output / ('result.' + fmt)})"
    if not output.parent.is_dir():
        return f"--output '{output}': folder '{output.parent}' does not exist; create it first"
    return None


@contextmanager
def _sink(output: Path | None, binary: bool = False):
    """stdout, or a temporary file next to `output` renamed onto it once complete (no half-written result)."""
    if output is None:
        yield sys.stdout.buffer if binary else sys.stdout
        sys.stdout.flush()
        return
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"newline": "", "encoding": "utf-8"})) as f:
            yield f
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)


def _batches(result):
    while rows := result.fetchmany(BATCH_ROWS):
        yield rows


def write_result(con, sql: str, fmt: str, output: Path | None = None, max_rows: int = 100) -> None:
    """Run `sql` on `con` and write its result; memory stays bounded by one batch, whatever the row count."""
    if fmt == "table":
        con.sql(sql).show(max_rows=max_rows, max_width=10_000)  # DuckDB reads only the rows it shows
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        reader = con.sql(sql).to_arrow_reader(BATCH_ROWS * 10)
        with _sink(output, binary=True) as f, pq.ParquetWriter(f, reader.schema) as w:
            for batch in reader:
                w.write_batch(batch)
    elif fmt == "csv":
        import csv

        result = con.execute(sql)
        with _sink(output) as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow([d[0] for d in result.description])
            for rows in _batches(result):
                w.writerows(rows)
    else:
        result = con.execute(sql)
        cols = [d[0] for d in result.description]
        encode = json.JSONEncoder(default=str).encode  # one encoder: json.dumps(default=...) builds one per call
        with _sink(output) as f:
            sep = "[\n"
            for rows in _batches(result):
                f.write(sep + ",\n".join(encode(dict(zip(cols, r))) for r in rows))
                sep = ",\n"
            f.write("[]\n" if sep == "[\n" else "\n]\n")
