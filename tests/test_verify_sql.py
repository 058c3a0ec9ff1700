"""`aig verify` catches damage; `aig sql` is read-only and exports; config files and overrides."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from pathlib import Path

from conftest import AIG, aig_env, run_aig, sql_rows
from corpus import make_images


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    base = tmp_path_factory.mktemp("small")
    make_images(base / "in", 12, size=(96, 96))
    out = base / "ds"
    run_aig("build-data", "-o", out, "--input-dir", base / "in", "--samples-per-shard", 4, "--executor", "local",
            "--stages", "ingest")
    return out


def _damaged(small_dataset, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(small_dataset, copy)
    return copy, sorted((copy / "shards").glob("**/*.tar"))


def test_verify_ok(small_dataset):
    assert run_aig("verify", small_dataset).stdout.strip().endswith("OK")


def test_verify_catches_truncated_tar(small_dataset, tmp_path):
    ds, tars = _damaged(small_dataset, tmp_path)
    data = tars[0].read_bytes()
    tars[0].write_bytes(data[: len(data) // 2])
    proc = run_aig("verify", ds, check=False)
    assert proc.returncode == 1 and "truncated" in proc.stdout


def test_verify_catches_flipped_byte(small_dataset, tmp_path):
    ds, tars = _damaged(small_dataset, tmp_path)
    row = sql_rows(ds, f"select offset_data, size, key from samples where shard = "
                       f"'{tars[0].relative_to(ds).as_posix()}' limit 1")[0]
    data = bytearray(tars[0].read_bytes())
    data[row["offset_data"] + row["size"] // 2] ^= 0x01
    tars[0].write_bytes(bytes(data))
    proc = run_aig("verify", ds, check=False)
    assert proc.returncode == 1
    assert "corrupted" in proc.stdout and f"sample {row['key']}" in proc.stdout and "sha256 mismatch" in proc.stdout


def test_verify_catches_missing_and_unlisted_shards(small_dataset, tmp_path):
    ds, tars = _damaged(small_dataset, tmp_path)
    tars[0].unlink()
    shutil.copy(tars[1], tars[1].with_name("stray.tar"))
    proc = run_aig("verify", ds, check=False)
    assert proc.returncode == 1
    assert "shard missing" in proc.stdout and "stray.tar: tar on disk but in no done marker" in proc.stdout


def test_verify_counts_rows_and_finds_orphans(small_dataset, tmp_path):
    import pyarrow.parquet as pq

    ds, tars = _damaged(small_dataset, tmp_path)
    table = sorted((ds / "manifest" / "samples").glob("*.parquet"))[0]
    rows = pq.read_table(table)
    lost = rows.slice(0, 1).to_pylist()[0]
    pq.write_table(rows.slice(1), table)  # a row removed: its member is now an orphan
    from aig.manifests.dataset import Dataset

    index = Dataset(ds).index_path(tars[-1])
    idx = pq.read_table(index)
    pq.write_table(idx.slice(1), index)
    proc = run_aig("verify", ds, check=False)
    assert proc.returncode == 1
    assert f"{table.relative_to(ds)}: {rows.num_rows - 1} rows, its done marker counts {rows.num_rows}" in proc.stdout
    assert f"{lost['shard']}: sample {lost['key']} has no row in the samples table (orphan member" in proc.stdout
    assert f"{tars[-1].relative_to(ds)}: member {idx['member'][0]} is not in its index (orphan)" in proc.stdout


def test_damaged_manifest_and_catalog_give_one_line_errors_and_the_build_rebuilds_the_catalog(small_dataset, tmp_path):
    ds, _ = _damaged(small_dataset, tmp_path)
    failures = sorted((ds / "manifest" / "failures").glob("*.parquet"))[0]
    failures.write_bytes(failures.read_bytes()[:40])
    (ds / "catalog.duckdb").write_bytes(b"not a database" * 100)
    proc = run_aig("verify", ds, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{failures.relative_to(ds)}: damaged Parquet file" in proc.stdout
    assert "catalog.duckdb" in proc.stdout and "re-run the same `aig build-data` command" in proc.stdout
    for args in (["info", ds], ["sql", "-d", ds, "select 1"]):
        proc = run_aig(*args, check=False)
        assert proc.returncode == 2 and proc.stderr.startswith("error: catalog") and "build-data" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    good = small_dataset / "manifest" / "failures" / failures.name
    shutil.copy(good, failures)  # re-running the build rebuilds the catalog (it never re-ingests)
    run_aig("build-data", "-o", ds, "--input-dir", small_dataset.parent / "in", "--samples-per-shard", 4,
            "--executor", "local", "--stages", "ingest")
    assert run_aig("verify", ds).stdout.strip().endswith("OK")
    failures.write_bytes(good.read_bytes()[:40])
    proc = run_aig("info", ds, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"manifest file '{failures.resolve()}' is damaged" in proc.stderr and "aig verify" in proc.stderr


def test_evaluate_refuses_a_missing_shard(small_dataset, tmp_path):
    ds, _ = _damaged(small_dataset, tmp_path)
    gone = sql_rows(ds, "select shard from samples where split = 'train' order by shard limit 1")[0]["shard"]
    (ds / gone).unlink()
    proc = run_aig("evaluate", "-d", ds, "--split", "train", "--pixel", tmp_path / "no-checkpoint", check=False)
    assert proc.returncode == 2 and f"shard {gone}" in proc.stderr and "is missing" in proc.stderr
    assert "Traceback" not in proc.stderr


def _as_unprivileged(*args):
    """Run aig without root's power to ignore file permissions (CAP_DAC_OVERRIDE), so read-only means read-only."""
    import os

    from conftest import AIG, aig_env

    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: permissions cannot be enforced")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run([*prefix, AIG, *map(str, args)], capture_output=True, text=True, env=aig_env(), timeout=300)


def test_read_only_outputs_give_one_line_errors(small_dataset, tmp_path):
    ds, _ = _damaged(small_dataset, tmp_path)
    for p in [ds, *ds.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        runs = [_as_unprivileged("build-data", "-o", ds, "--input-dir", small_dataset.parent / "in", "--executor",
                                 "local", "--stages", "ingest", "--samples-per-shard", 4),
                _as_unprivileged("label-semantic", "-d", ds, "--backend", "openai", "--model", "m", "--base-url",
                                 "http://127.0.0.1:9/v1", "--executor", "local"),
                _as_unprivileged("report", ds)]
    finally:
        for p in [ds, *ds.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
    for proc in runs:
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "Permission denied" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("statement", [
    "delete from samples",
    "insert into runs select * from runs",
    "create table x as select 1",
    "drop view samples",
    "copy (select * from samples) to 'leak.csv'",
    "attach 'other.db' as o",
    "select 1; delete from samples",
])
def test_sql_refuses_writes(small_dataset, statement):
    before = (small_dataset / "catalog.duckdb").read_bytes()
    proc = run_aig("sql", "-d", small_dataset, statement, check=False)
    assert proc.returncode == 2 and "read-only" in proc.stderr
    assert (small_dataset / "catalog.duckdb").read_bytes() == before
    assert sql_rows(small_dataset, "select count(*) as n from samples") == [{"n": 12}]


def _snapshot(*folders) -> dict:
    """Every file under the folders: path -> (size, mtime_ns, sha256)."""
    import hashlib

    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sql_sandbox_blocks_every_escape(small_dataset, tmp_path):
    import tempfile
    import uuid

    import duckdb
    from aig.manifests.catalog import CatalogError, connect_readonly, open_query

    ds = small_dataset.resolve()
    manifest_file = sorted((ds / "manifest" / "samples").glob("*.parquet"))[0]
    outside = ds.parent / "outside-secret.txt"  # next to the dataset, not in it
    outside.write_text("outside secret\n")
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    in_tmp = Path(tempfile.gettempdir()) / f"aig-escape-{uuid.uuid4().hex}.csv"
    (hostile / "schema.sql").write_text("")
    (hostile / "load.sql").write_text(f"COPY (SELECT 42 AS x) TO '{in_tmp}';\n")
    before = _snapshot(ds, tmp_path)
    writes = [
        f"EXPLAIN ANALYZE COPY (SELECT 42 x) TO '{in_tmp}'",
        f"EXPLAIN ANALYZE COPY (SELECT * FROM samples WHERE false) TO '{manifest_file}' (FORMAT parquet)",
        f"COPY (SELECT * FROM samples WHERE false) TO '{manifest_file}' (FORMAT parquet)",
        f"COPY (SELECT 1) TO '{ds}/leak.csv'",
        f"IMPORT DATABASE '{hostile}'",
        f"EXPORT DATABASE '{tmp_path / 'export'}'",
        f"ATTACH '{tmp_path / 'other.db'}' AS o", "ATTACH ':memory:' AS m",
        "INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true", "SET allowed_directories = ['/']",
        "RESET lock_configuration", "PRAGMA enable_profiling", "CALL checkpoint()", "CHECKPOINT",
        "delete from samples", "insert into runs select * from runs", "create table x as select 1",
        "create temp table x as select 1", "drop view samples",
        "select 1; delete from samples", f"select 1; copy (select 1) to '{in_tmp}'",
        "select * from query('copy (select 1) to ''" + str(in_tmp) + "''')",
    ]
    reads = [
        "select * from read_text('/etc/passwd')", f"select * from read_text('{outside}')",
        f"select * from read_csv('{ds}/../{outside.name}')", f"select * from read_blob('{hostile}/load.sql')",
        "select * from glob('/etc/*')", "select * from read_text('~/.bashrc')",
        "select * from 'https://example.com/x.parquet'", "select * from read_parquet('s3://bucket/x.parquet')",
    ]
    for q in writes + reads:
        con = None
        try:
            con, sql = open_query(ds, q)
            rows = con.execute(sql).fetchall()
        except (CatalogError, duckdb.Error) as e:
            assert q in writes or isinstance(e, duckdb.PermissionException), (q, e)
        else:
            raise AssertionError(f"not refused: {q!r} -> {rows!r}")
        finally:
            if con is not None:
                con.close()
    # DuckDB itself, without the statement check, refuses everything outside the dataset folder
    con = connect_readonly(ds)
    for q in writes[:1] + writes[4:14] + reads:  # (CHECKPOINT is a no-op on a read-only catalog)
        with pytest.raises(duckdb.Error):
            con.execute(q).fetchall()
    con.close()
    # ... and reads inside it
    con, sql = open_query(ds, f"select count(*) from read_parquet('{ds}/manifest/samples/*.parquet')")
    assert con.execute(sql).fetchall() == [(12,)]
    con.close()
    # the CLI: the same refusals as one-line errors
    cli = {
        writes[0]: "read-only", "select 1; select 2": "one statement per call",
        reads[0]: f"`aig sql` reads only files under {ds}", reads[6]: "reads only files under",
    }
    for q, message in cli.items():
        proc = run_aig("sql", "-d", ds, q, check=False, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.splitlines()) == 1, (q, proc.stderr)
    proc = run_aig("sql", "-d", ds, "--format", "json", "--output", tmp_path, "select 1", check=False)
    assert proc.returncode == 2 and "is a folder; name a file" in proc.stderr
    assert not in_tmp.exists()
    assert _snapshot(ds, tmp_path) == before
    assert sql_rows(ds, "select count(*) as n from samples") == [{"n": 12}]


def test_sql_streams_in_bounded_memory(small_dataset, tmp_path):
    """500k rows as JSON to stdout: the old whole-result JSON took ~350 MB for this, streaming stays near start-up size."""
    code = ("import resource, subprocess, sys\n"
            "with open(sys.argv[1], 'wb') as f:\n"
            "    rc = subprocess.run(sys.argv[2:], stdout=f).returncode\n"
            "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n")
    out = tmp_path / "out.json"
    q = "select range as i, 'row ' || range as s from range(500000)"
    proc = subprocess.run([sys.executable, "-c", code, str(out), AIG, "sql", "-d", str(small_dataset),
                           "--format", "json", q], capture_output=True, text=True, env=aig_env())
    rc, rss_mb = map(int, proc.stdout.split())
    assert rc == 0, proc.stderr
    assert rss_mb < 150, f"aig sql --format json used {rss_mb} MB for 500k rows"
    with open(out, "rb") as f:
        assert f.read(20) == b'[\n{"i": 0, "s": "row'
        f.seek(-40, 2)
        assert f.read().endswith(b'{"i": 499999, "s": "row 499999"}\n]\n')
    pq_file = tmp_path / "out.parquet"
    run_aig("sql", "-d", small_dataset, "--format", "parquet", "--output", pq_file, q.replace("500000", "300000"))
    import pyarrow.parquet as pq

    assert pq.read_metadata(pq_file).num_rows == 300000
    assert not list(tmp_path.glob(".*tmp*"))


def test_sql_formats(small_dataset, tmp_path):
    q = "select split, count(*) as n from samples group by all order by split"
    table = run_aig("sql", "-d", small_dataset, q).stdout
    assert "split" in table and "│" in table
    csv_text = run_aig("sql", "-d", small_dataset, "--format", "csv", q).stdout
    assert csv_text.splitlines()[0] == "split,n"
    pq_file = tmp_path / "out.parquet"
    run_aig("sql", "-d", small_dataset, "--format", "parquet", "--output", pq_file, q)
    import pyarrow.parquet as pq

    assert sum(pq.read_table(pq_file)["n"].to_pylist()) == 12
    json_file = tmp_path / "out.json"
    run_aig("sql", "-d", small_dataset, "--format", "json", "--output", json_file, q)
    assert sum(r["n"] for r in json.loads(json_file.read_text())) == 12
    bad = run_aig("sql", "-d", small_dataset, "select nope from samples", check=False)
    assert bad.returncode == 2 and "query failed" in bad.stderr
    missing = run_aig("sql", "-d", tmp_path / "nothing", "select 1", check=False)
    assert missing.returncode == 2 and "no catalog" in missing.stderr


def test_config_file_and_override(tmp_path):
    make_images(tmp_path / "in", 3, size=(200, 150))
    cfg = tmp_path / "aig.toml"
    cfg.write_text(f'output = "{tmp_path / "ds"}"\nstages = ["ingest"]\n[inputs]\nfolders = ["{tmp_path / "in"}"]\n'
                   '[ingest]\npolicy = "center-crop"\nsize = 128\nimage_format = "jpeg"\n'
                   '[runner]\nexecutor = "local"\n')
    run_aig("build-data", "--config", cfg, "--size", 64)
    rows = sql_rows(tmp_path / "ds", "select distinct width, height, format, canonical from samples")
    assert rows == [{"width": 64, "height": 64, "format": "jpg", "canonical": "center-crop:64"}]
    config = json.loads(sql_rows(tmp_path / "ds", "select config from runs")[0]["config"])
    assert config["ingest"]["size"] == 64 and config["ingest"]["image_format"] == "jpeg"
    cfg.write_text("[ingest]\ncolour = 1\n")
    proc = run_aig("build-data", "--config", cfg, check=False)
    assert proc.returncode == 2 and "unknown config key 'ingest.colour'" in proc.stderr
    cfg.write_text("[ingest]\nsize = 256.5\n")
    proc = run_aig("build-data", "--config", cfg, check=False)
    assert proc.returncode == 2 and proc.stderr == "error: config key 'ingest.size' must be an integer, got 256.5\n"


def test_help_and_sql_do_not_import_heavy_libraries(small_dataset):
    code = (
        "import sys\n"
        "from aig.cli import app\n"
        "for args in (['--help'], ['sql', '-d', sys.argv[1], 'select count(*) from samples'], ['build-data', '--help']):\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "heavy = sorted(m for m in ('torch', 'ray', 'diffusers', 'transformers', 'pyarrow', 'PIL') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(small_dataset)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
