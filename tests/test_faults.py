"""Fault injection: kill -9 of the driver or of a Ray worker, a full disk, corrupt inputs in a large run.

All but the in-process disk-full test are marked slow (`make test-slow`); scripts/faults.py runs the
same scenarios with more repetitions.
"""

from __future__ import annotations

import pytest
from conftest import run_aig, sql_rows
from corpus import _truncate, make_images
from faults import (clean_run, corrupt_mid_run, dataset_bytes, disk_full_then_resume, ingest_args, kill_ray_worker,
                    mount_tmpfs, random_kill_runs, unmount)


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    make_images(folder, 60, size=(192, 160))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    return folder


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs, unmounted afterwards; skipped where mounting is not permitted."""
    disk = tmp_path / "disk"
    why = mount_tmpfs(disk, 24 * 2**20)
    if why:
        pytest.skip(why)
    yield disk
    unmount(disk)


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(inputs, tmp_path):
    records = random_kill_runs(inputs, tmp_path / "work", runs=10, seed=7, log=print)
    assert len(records) == 10
    for r in records:  # a resume says so, unless it was killed before its run was recorded (then it starts anew)
        last = r["kills"][-1]
        assert r["resumed"] or last["finished_first"] or not last["run_row"], r
    killed_mid_run = [r for r in records if any(0 < k["done_markers"] and not k["finished_first"] for k in r["kills"])]
    assert killed_mid_run, f"no round was killed after a chunk finished: {records}"


@pytest.mark.slow
def test_ray_worker_killed_mid_stage_run_completes(tmp_path):
    folder = tmp_path / "in"
    make_images(folder, 40, size=(512, 512))
    args = ingest_args(folder, "ray", per_chunk=5, size=256)
    clean, _ = clean_run(args, tmp_path / "clean")
    record = kill_ray_worker(args, tmp_path / "ds", clean)
    assert "worker_crash" not in record["stdout"]  # Ray re-ran the chunk; nothing was lost


def _disk_full(inputs, tmp_path, small_disk, executor):
    args = ingest_args(inputs, executor, size=160)
    args[args.index("--policy") + 1] = "native"  # bigger PNGs: the run needs a few MiB
    args[args.index("--size") + 1] = 2048  # native pixels: no crop
    clean, _ = clean_run(args, tmp_path / "clean")
    record = disk_full_then_resume(args, small_disk, clean, dataset_bytes(tmp_path / "clean"))
    assert record["first_rc"] == 2, record
    assert f"the disk holding dataset '{small_disk / 'ds'}' is full" in record["error"]
    assert "re-run the same command to resume" in record["error"]
    assert record["temp_files_after_error"] == []  # a failed write removes its temporary file
    assert 1 <= record["done_before_full"] < 11 and record["tars_before_full"] >= 1, record  # stopped mid-run
    assert record["resumed"]
    return record


def test_disk_full_clear_error_then_resume_in_process(inputs, tmp_path, small_disk):
    _disk_full(inputs, tmp_path, small_disk, "local")


@pytest.mark.slow
def test_disk_full_clear_error_then_resume_on_ray(inputs, tmp_path, small_disk):
    _disk_full(inputs, tmp_path, small_disk, "ray")


@pytest.mark.slow
def test_corrupt_inputs_in_a_large_run(tmp_path):
    folder = tmp_path / "in"
    paths = make_images(folder, 400, size=(96, 96))
    (folder / "img_000199_truncated.jpg").write_bytes(_truncate(paths[199].read_bytes(), "JPEG"))  # sorts mid-run
    out = tmp_path / "ds"
    args = ingest_args(folder, "ray", per_chunk=25, size=64)
    record = corrupt_mid_run(args, out, paths[390], b"\xff\xd8\xff\xe0 garbage written mid-run")
    assert record["done_when_changed"] < 15
    failures = {r["input_path"]: r["reason"] for r in sql_rows(out, "select input_path, reason from failures")}
    assert failures == {str((folder / "img_000199_truncated.jpg").resolve()): "truncated",
                        str(paths[390].resolve()): "changed"}
    landed = {r["input_path"] for r in sql_rows(out, "select input_path from samples")}
    assert landed == {str(p.resolve()) for i, p in enumerate(paths) if i != 390}
    assert "OK" in run_aig("verify", out).stdout
