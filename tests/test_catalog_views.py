"""The catalog reads manifest files by position when they share a schema, by name when they do not."""

from __future__ import annotations

from conftest import sql_rows


def _write(root, name, table):
    import pyarrow.parquet as pq

    folder = root / "manifest" / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / name)


def test_views_union_by_name_only_when_schemas_differ(tmp_path):
    import duckdb
    import pyarrow as pa

    from aig.manifests.catalog import refresh_catalog
    from aig.manifests.schema import SAMPLES, to_table

    _write(tmp_path, "a.parquet", to_table(SAMPLES, [{"key": "a", "split": "train", "width": 4}]))
    _write(tmp_path, "b.parquet", to_table(SAMPLES, [{"key": "b", "split": "val", "width": 5}]))
    refresh_catalog(tmp_path)
    con = duckdb.connect(str(tmp_path / "catalog.duckdb"), read_only=True)
    sql = con.execute("select sql from duckdb_views() where view_name = 'samples'").fetchall()[0][0]
    con.close()
    assert "union_by_name=true" not in sql  # (the tmp path itself contains "union_by_name")
    assert sql_rows(tmp_path, "select key, width from samples order by key") == [{"key": "a", "width": 4},
                                                                                 {"key": "b", "width": 5}]
    # a file with another column order and an extra column (e.g. written by a later version)
    _write(tmp_path, "c.parquet", pa.table({"extra": ["x"], "width": pa.array([6], pa.int32()), "key": ["c"]}))
    refresh_catalog(tmp_path)
    assert sql_rows(tmp_path, "select key, width, extra from samples order by key") == [
        {"key": "a", "width": 4, "extra": None}, {"key": "b", "width": 5, "extra": None},
        {"key": "c", "width": 6, "extra": "x"}]
