"""Every planted input ends up in exactly one of samples or failures, with the right reason."""

from __future__ import annotations

import json

from pathlib import Path

from conftest import run_aig, sql_rows
from corpus import (GOOD, TEST_MAX_PIXELS, TEST_MIN_SIZE, make_bad_lists, make_corpus_with_sizes,
                    make_list_corpus, make_shard_corpus, markdown_table)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md"


def test_folder_with_bad_files(tmp_path):
    folder = tmp_path / "in"
    expected, sizes = make_corpus_with_sizes(folder)
    out = tmp_path / "ds"
    proc = run_aig("build-data", "-o", out, "--input-dir", folder, "--min-size", TEST_MIN_SIZE,
                   "--max-pixels", TEST_MAX_PIXELS, "--policy", "native", "--samples-per-shard", 8,
                   "--stages", "ingest")
    n_bad = sum(v != GOOD for v in expected.values())
    assert f"{len(expected)} inputs -> {len(expected) - n_bad} samples, {n_bad} failures" in proc.stdout

    samples = sql_rows(out, "select input_path, width, height, source_mode from samples")
    failures = sql_rows(out, "select input_path, stage, reason, error, duplicate_of from failures")
    rel = lambda p: p[len(str(folder.resolve())) + 1:]  # noqa: E731
    got = {rel(r["input_path"]): GOOD for r in samples}
    for f in failures:
        assert rel(f["input_path"]) not in got, f"{f['input_path']} is in both tables"
        got[rel(f["input_path"])] = f["reason"]
        assert f["stage"] == "ingest" and f["error"]
    assert got == expected
    for r in samples:
        assert (r["width"], r["height"]) == sizes[rel(r["input_path"])]
    dup = next(f for f in failures if f["reason"] == "duplicate")
    assert dup["duplicate_of"] and rel(dup["duplicate_of"]) in expected
    assert "OK" in run_aig("verify", out).stdout
    info = run_aig("info", out).stdout
    assert "truncated" in info and "animated" in info


def test_lists_and_shards_as_inputs(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import webdataset as wds
    from corpus import make_images

    imgs = make_images(tmp_path / "imgs", 6, size=(96, 80))
    csv_list = tmp_path / "list.csv"
    csv_list.write_text("path,caption\n" + "".join(f"imgs/{p.name},caption {i}\n" for i, p in enumerate(imgs[:2]))
                        + "imgs/missing.jpg,gone\n")
    pq.write_table(pa.table({"image": [str(imgs[2])], "caption": ["from parquet"]}), tmp_path / "list.parquet")
    (tmp_path / "list.txt").write_text(f"# comment\n{imgs[3]}\n")
    shard = tmp_path / "in-000000.tar"
    with wds.TarWriter(str(shard)) as w:
        w.write({"__key__": "a", "jpg": imgs[4].read_bytes(), "txt": "shard caption"})
        w.write({"__key__": "b", "jpg": imgs[5].read_bytes()})
        w.write({"__key__": "c", "json": json.dumps({"no": "image"}).encode()})
    out = tmp_path / "ds"
    run_aig("build-data", "-o", out, "--executor", "local", "--stages", "ingest", "--input-list", csv_list,
            "--input-list", tmp_path / "list.parquet", "--input-list", tmp_path / "list.txt",
            "--input-shards", str(tmp_path / "in-{000000..000000}.tar"))
    samples = {r["input_path"]: r for r in sql_rows(out, "select input_path, caption, origin from samples")}
    failures = {r["input_path"]: r["reason"] for r in sql_rows(out, "select input_path, reason from failures")}
    assert samples[str(imgs[0].resolve())]["caption"] == "caption 0"
    assert samples[str(imgs[2].resolve())]["caption"] == "from parquet"
    assert samples[str(imgs[3].resolve())]["origin"] == "list"
    assert samples[f"{shard.resolve()}#a.jpg"]["caption"] == "shard caption"
    assert samples[f"{shard.resolve()}#b.jpg"]["origin"] == "shards"
    assert failures == {str((tmp_path / "imgs" / "missing.jpg").resolve()): "missing",
                        f"{shard.resolve()}#c": "no_image_member"}


def test_unknown_input_gives_clear_error(tmp_path):
    proc = run_aig("build-data", "-o", tmp_path / "ds", "--input-dir", tmp_path / "nope", check=False)
    assert proc.returncode == 2 and "input folder" in proc.stderr and "does not exist" in proc.stderr
    proc = run_aig("build-data", "-o", tmp_path / "ds", "--policy", "stretch", check=False)
    assert proc.returncode == 2 and "Invalid value for '--policy'" in proc.stderr and "'stretch' is not one of 'native'" in proc.stderr


def _outcomes(out) -> dict[str, str]:
    """{input_path: "ok" or reason}; fails if an input is in both tables."""
    got = {r["input_path"]: GOOD for r in sql_rows(out, "select input_path from samples")}
    for f in sql_rows(out, "select input_path, reason, error from failures"):
        assert f["input_path"] not in got, f"{f['input_path']} is in both tables"
        assert f["error"], f
        got[f["input_path"]] = f["reason"]
    return got


def test_awkward_paths_in_a_list(tmp_path):
    list_file, expected = make_list_corpus(tmp_path / "lc")
    bad_lists, bad_expected, captions = make_bad_lists(tmp_path / "bad")
    out = tmp_path / "ds"
    proc = run_aig("build-data", "-o", out, "--input-list", list_file, *[a for f in bad_lists for a in ("--input-list", f)],
                   "--executor", "local", "--stages", "ingest")
    assert "Traceback" not in proc.stderr
    assert _outcomes(out) == {**expected, **bad_expected}
    rows = sql_rows(out, "select input_path, length(caption) as n from samples where caption is not null")
    assert {r["input_path"]: r["n"] for r in rows} == captions
    errors = {r["input_path"]: r["error"] for r in sql_rows(out, "select input_path, error from failures")}
    assert "not UTF-8" in errors[str((tmp_path / "bad" / "latin1.csv").resolve())]
    assert "Credentials" in errors["s3://aig-no-such-bucket/x.png"]
    assert "OK" in run_aig("verify", out).stdout


def test_hostile_and_damaged_input_shards(tmp_path):
    shards, expected = make_shard_corpus(tmp_path / "sc")
    out = tmp_path / "ds"
    before = sorted(p for p in tmp_path.parent.iterdir())
    run_aig("build-data", "-o", out, "--input-shards", tmp_path / "sc", "--executor", "local", "--stages",
            "ingest", cwd=tmp_path / "sc")
    assert _outcomes(out) == expected
    assert sorted(p for p in tmp_path.parent.iterdir()) == before  # nothing written next to tmp_path
    assert not Path("/abs/olute.png").exists() and not (tmp_path / "escape.png").exists()
    written = {p.relative_to(out).parts[0] for p in out.rglob("*")}
    assert written <= {"shards", "index", "manifest", "catalog.duckdb", "info.json", "README.md", ".aig.lock"}, written
    assert "OK" in run_aig("verify", out).stdout


def test_the_documented_table_matches_the_corpus():
    assert DOCS.read_text().split("<!-- corpus:begin -->\n")[1].split("<!-- corpus:end -->")[0] == markdown_table(), (
        "docs/bad-inputs.md is out of date: regenerate its table with `python tests/corpus.py --markdown`")
