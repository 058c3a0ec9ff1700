"""kill -9 in the middle of a run, then the same command again: the same dataset as a clean run."""

from __future__ import annotations

import tarfile

import pytest

from conftest import run_aig, sql_rows, start_and_kill, tar_digests
from corpus import make_images


def _manifest(out):
    samples = sql_rows(out, "select key, sha256, shard, offset_data, split from samples order by key")
    failures = sql_rows(out, "select input_path, reason from failures order by input_path")
    return samples, failures


@pytest.mark.slow
def test_kill_9_then_resume_equals_clean_run(tmp_path):
    folder = tmp_path / "in"
    make_images(folder, 72, size=(320, 320))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    args = ["build-data", "--input-dir", folder, "--samples-per-shard", 4, "--policy", "center-crop",
            "--size", 256, "--workers", 2, "--stages", "ingest"]
    clean = tmp_path / "clean"
    run_aig(*args, "-o", clean)

    killed = tmp_path / "killed"
    done = killed / "manifest" / "done"
    n_done = start_and_kill([*args, "-o", killed], done, "*.json", 4)
    assert 4 <= n_done < 19, n_done
    for tar in (killed / "shards").glob("**/*.tar"):  # whatever is under a final name is a complete tar
        with tarfile.open(tar) as tf:
            assert len(tf.getmembers()) % 2 == 0

    resumed = run_aig(*args, "-o", killed)
    assert "(resumed)" in resumed.stdout and "resuming run-0001" in resumed.stderr
    assert tar_digests(killed) == tar_digests(clean)
    assert _manifest(killed) == _manifest(clean)
    assert "OK" in run_aig("verify", killed).stdout
    runs = sql_rows(killed, "select run_id, status, resumed from runs")
    assert runs == [{"run_id": "run-0001", "status": "complete", "resumed": 1}]


def test_append_then_overwrite(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    first = make_images(a, 6, size=(96, 96), seed=1)
    make_images(b, 4, size=(96, 96), seed=2)
    (b / "copy.jpg").write_bytes(first[0].read_bytes())
    out = tmp_path / "ds"
    run_aig("build-data", "-o", out, "--input-dir", a, "--executor", "local", "--stages", "ingest")
    before = tar_digests(out)
    proc = run_aig("build-data", "-o", out, "--input-dir", a, "--input-dir", b, "--executor", "local", "--stages",
                   "ingest")
    assert "6 inputs are already in the dataset; appending 5 new ones" in proc.stderr
    after = tar_digests(out)
    assert all(after[k] == v for k, v in before.items()) and len(after) > len(before)
    assert sql_rows(out, "select count(*) as n from samples") == [{"n": 10}]
    dup = sql_rows(out, "select reason, duplicate_of from failures")
    assert dup == [{"reason": "duplicate", "duplicate_of": str(first[0].resolve())}]
    assert [r["run_id"] for r in sql_rows(out, "select run_id from runs order by 1")] == ["run-0001", "run-0002"]
    again = run_aig("build-data", "-o", out, "--input-dir", a, "--input-dir", b, "--executor", "local", "--stages",
                    "ingest")  # the same command once more: nothing to do, and no empty run in the runs table
    assert "nothing to do" in again.stdout and tar_digests(out) == after
    assert [r["run_id"] for r in sql_rows(out, "select run_id from runs order by 1")] == ["run-0001", "run-0002"]
    (out / "thesis").mkdir()  # files aig never wrote: --overwrite leaves them alone
    (out / "thesis" / "chapter1.tex").write_text("x")
    (out / "notes.txt").write_text("mine")
    run_aig("build-data", "-o", out, "--input-dir", b, "--executor", "local", "--overwrite", "--stages", "ingest")
    assert sql_rows(out, "select count(*) as n from samples") == [{"n": 5}]
    assert (out / "thesis" / "chapter1.tex").read_text() == "x" and (out / "notes.txt").read_text() == "mine"


def test_overwrite_of_a_new_folder_works(tmp_path):
    run_aig("build-data", "-o", tmp_path / "new", "--executor", "local", "--overwrite", "--stages", "ingest")
    assert sql_rows(tmp_path / "new", "select count(*) as n from samples") == [{"n": 12}]


def test_overwrite_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = run_aig("build-data", "-o", tmp_path, "--overwrite", check=False)
    assert proc.returncode == 2 and "not an aig dataset" in proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_outputs_that_would_mix_with_other_files_are_refused(tmp_path):
    photos = tmp_path / "photos"
    make_images(photos, 2, size=(64, 64))
    (photos / "sub").mkdir()
    work = tmp_path / "work"
    (work / "thesis").mkdir(parents=True)
    (work / "thesis" / "chapter1.tex").write_text("x")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    cases = [(work, [], "is not empty and not an aig dataset (it holds 'thesis')"),
             (photos, ["--overwrite"], f"is input folder '{photos}'"),
             (a_file, [], "is an existing file, not a folder")]
    for out, extra, message in cases:
        proc = run_aig("build-data", "-o", out, "--input-dir", photos, "--executor", "local", "--stages", "ingest",
                       *extra, check=False)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, (out, proc.stderr)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written, nothing deleted


def test_unfinished_run_with_other_config_is_refused(tmp_path):
    folder = tmp_path / "in"
    make_images(folder, 3, size=(64, 64))
    out = tmp_path / "ds"
    run_aig("build-data", "-o", out, "--input-dir", folder, "--executor", "local", "--stages", "ingest")
    runs = out / "manifest" / "runs" / "run-0001.parquet"
    import pyarrow.parquet as pq

    t = pq.read_table(runs).to_pylist()
    t[0]["status"] = "running"  # as if the run had been killed
    import pyarrow as pa

    pq.write_table(pa.Table.from_pylist(t, schema=pq.read_schema(runs)), runs)
    proc = run_aig("build-data", "-o", out, "--input-dir", folder, "--executor", "local", "--size", 128,
                   "--stages", "ingest", check=False)
    assert proc.returncode == 2 and "unfinished run run-0001" in proc.stderr and "--overwrite" in proc.stderr
