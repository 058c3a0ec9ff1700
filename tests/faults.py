"""Fault-injection scenarios for `aig build-data`, shared by tests/test_faults.py and scripts/faults.py.

Plain functions, no tests here. Each scenario runs the real CLI in subprocesses, injects one fault
(kill -9 of the driver, kill -9 of a Ray worker, a full disk, a corrupt input) and returns a record
of what happened; `assert_same_dataset` compares the result with a clean run of the same command.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

from conftest import AIG, aig_env, run_aig, sql_rows, tar_digests

# ---------------------------------------------------------------------------------------------
# Comparing datasets
# ---------------------------------------------------------------------------------------------


def manifest_rows(out: Path) -> tuple[list[dict], list[dict]]:
    samples = sql_rows(out, "select key, sha256, shard, offset_data, split from samples order by key")
    failures = sql_rows(out, "select input_path, reason from failures order by input_path")
    return samples, failures


def temp_leftovers(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.glob("**/.*.tmp-*"))


def dataset_state(out: Path) -> dict:
    """Everything that must equal a clean run: tar bytes, manifest rows, one complete run, no temp files."""
    return {
        "tars": tar_digests(out),
        "manifest": manifest_rows(out),
        "runs": [(r["run_id"], r["status"]) for r in sql_rows(out, "select run_id, status from runs order by 1")],
        "temp_files": temp_leftovers(out),
    }


def assert_same_dataset(out: Path, clean_state: dict) -> None:
    state = dataset_state(out)
    assert state["temp_files"] == [], f"temporary files left in {out}: {state['temp_files']}"
    assert state["runs"] == [("run-0001", "complete")], state["runs"]
    assert state["tars"] == clean_state["tars"], f"{out}: tars differ from the clean run"
    assert state["manifest"] == clean_state["manifest"], f"{out}: manifest differs from the clean run"
    verify = run_aig("verify", out, check=False)
    assert verify.returncode == 0 and "OK" in verify.stdout, (verify.returncode, verify.stdout, verify.stderr[-2000:])


def complete_tars_only(out: Path, clean_state: dict | None = None) -> None:
    """Every tar under a final name is a whole tar (and, given a clean run, byte-identical to its tar)."""
    for tar in (out / "shards").glob("**/*.tar"):
        with tarfile.open(tar) as tf:
            assert len(tf.getmembers()) % 2 == 0, tar
    if clean_state is not None:
        for rel, digest in tar_digests(out).items():
            assert clean_state["tars"].get(rel) == digest, f"{rel} differs from the clean run's"


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def start_aig(args: list) -> subprocess.Popen:
    """`aig ARGS` in its own session (so killpg reaches the embedded Ray it starts)."""
    return subprocess.Popen([AIG, *map(str, args)], env=aig_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def _descendants(pid: int):
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmdline(p) -> str:
    import psutil

    try:
        return " ".join(a for a in p.cmdline() if a.strip()).strip()  # Ray pads its process titles
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


def ingest_args(folder: Path, executor: str = "ray", per_chunk: int = 6, size: int = 128) -> list:
    return ["build-data", "--input-dir", folder, "--stages", "ingest", "--samples-per-shard", per_chunk,
            "--policy", "center-crop", "--size", size, "--executor", executor, "--workers", 2]


def clean_run(args: list, out: Path) -> tuple[dict, float]:
    t0 = time.perf_counter()
    run_aig(*args, "-o", out)
    return dataset_state(out), time.perf_counter() - t0


def kill_driver_then_resume(args: list, out: Path, clean_state: dict, delay: float, kills: int = 1,
                            after_markers: int = 0) -> dict:
    """Start the build, kill -9 its whole process group `delay` s after `after_markers` chunks are done
    (then `kills - 1` more times the same way, while resuming), resume to the end, compare with the clean run."""
    record = {"delay_s": round(delay, 2), "after_markers": after_markers, "kills": [], "out": str(out)}
    done_dir = out / "manifest" / "done"
    for k in range(kills):
        proc = start_aig([*args, "-o", out])
        # a resumed run is killed after one more chunk of its own
        target = after_markers if k == 0 else (len(list(done_dir.glob("*.json"))) + 1 if after_markers else 0)
        while target and proc.poll() is None and len(list(done_dir.glob("*.json"))) < target:
            time.sleep(0.005)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < delay and proc.poll() is None:
            time.sleep(0.005)
        finished = proc.poll() is not None
        kill_group(proc)
        done = len(list((out / "manifest" / "done").glob("*.json")))
        record["kills"].append({"finished_first": finished, "done_markers": done,
                                "run_row": (out / "manifest" / "runs" / "run-0001.parquet").exists()})
        if finished:  # the delay outlasted the run: nothing left to kill or resume
            break
        complete_tars_only(out, clean_state)
    record["resumed"] = False
    if not record["kills"][-1]["finished_first"]:
        record["resumed"] = "(resumed)" in run_aig(*args, "-o", out).stdout
    assert_same_dataset(out, clean_state)
    return record


def random_kill_runs(folder: Path, work: Path, runs: int, seed: int = 0, log=print) -> list[dict]:
    """`runs` kill-and-resume rounds at random moments, alternating the Ray and in-process executors.

    Moments: even rounds at a random time since start (start-up, planning, chunks or the catalog), odd
    rounds a random 0-0.3 s after a random number of chunks is done (so kills land while chunks are
    written); every third round kills the resuming run as well."""
    rng = random.Random(seed)
    records = []
    clean: dict[str, tuple[dict, float]] = {}
    for executor in ("ray", "local"):
        clean[executor] = clean_run(ingest_args(folder, executor), work / f"clean-{executor}")
    assert clean["ray"][0]["tars"] == clean["local"][0]["tars"], "the two executors disagree"
    for i in range(runs):
        executor = ("ray", "local")[i % 2]
        state, seconds = clean[executor]
        n_chunks = len({t.split("/")[-1].rsplit("-", 1)[0] for t in state["tars"]})
        if (i // 2) % 2 == 0:
            delay, after = rng.uniform(0.0, seconds), 0
        else:
            delay, after = rng.uniform(0.0, 0.3), rng.randint(1, max(1, n_chunks - 1))
        kills = 2 if i % 3 == 2 else 1
        rec = kill_driver_then_resume(ingest_args(folder, executor), work / f"killed-{i:02d}", state, delay, kills,
                                      after)
        rec.update(round=i, executor=executor, clean_s=round(seconds, 2))
        log(f"round {i}: {executor}, killed {rec['delay_s']} s after {after} chunks done (clean run {seconds:.1f} s): "
            f"{rec['kills']} -> identical")
        records.append(rec)
        shutil.rmtree(work / f"killed-{i:02d}")
    return records


def kill_ray_worker(args: list, out: Path, clean_state: dict, timeout: float = 240) -> dict:
    """Kill -9 the first Ray worker seen running a stage task; the build must still complete identically."""
    proc = start_aig([*args, "-o", out])
    killed = None
    deadline = time.time() + timeout
    try:
        while killed is None and proc.poll() is None and time.time() < deadline:
            for p in _descendants(proc.pid):
                cmd = _cmdline(p)
                if cmd.startswith("ray::run_chunk") or cmd.startswith("ray::ReconstructWorker.run_chunk"):
                    try:
                        p.kill()
                        killed = {"pid": p.pid, "cmdline": cmd}
                    except Exception:  # noqa: BLE001 - it may have just finished; try the next one
                        continue
                    break
            time.sleep(0.02)
        stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.time()))
    except BaseException:
        kill_group(proc)
        raise
    assert killed is not None, "no Ray worker was seen running a chunk (the run was too short?)"
    assert proc.returncode == 0, f"build failed after a worker was killed:\n{stdout}\n{stderr}"
    assert_same_dataset(out, clean_state)
    return {"killed": killed, "stdout": stdout}


def mount_tmpfs(path: Path, size_bytes: int) -> str | None:
    """Mount a tmpfs of `size_bytes` at path; returns why not when that is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"cannot mount a tmpfs at {path} (needs root/CAP_SYS_ADMIN): {proc.stderr.strip()}"
    return None


def unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def dataset_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def disk_full_then_resume(args: list, disk: Path, clean_state: dict, clean_bytes: int) -> dict:
    """Build onto a disk (a mounted tmpfs) with ~half the room the dataset needs: a clear error, no partial
    tar under a final name; after a filler file is deleted, the same command finishes identically."""
    out = disk / "ds"
    free = shutil.disk_usage(disk).free
    filler_size = free - clean_bytes // 2
    assert filler_size > 0, (free, clean_bytes)
    with open(disk / "filler.bin", "wb") as f:
        f.write(b"\0" * filler_size)  # tmpfs: written bytes take memory/space, a sparse file would not
    first = run_aig(*args, "-o", out, check=False)
    record = {"first_rc": first.returncode, "error": first.stderr.strip().splitlines()[-1] if first.stderr else "",
              "done_before_full": len(list((out / "manifest" / "done").glob("*.json"))),
              "tars_before_full": len(list((out / "shards").glob("**/*.tar"))),
              "temp_files_after_error": temp_leftovers(out)}
    complete_tars_only(out, clean_state)
    (disk / "filler.bin").unlink()
    resumed = run_aig(*args, "-o", out)
    record["resumed"] = "(resumed)" in resumed.stdout
    assert_same_dataset(out, clean_state)
    return record


def corrupt_mid_run(args: list, out: Path, change: Path, garbage: bytes, timeout: float = 240) -> dict:
    """Overwrite `change` (planned for a late chunk) with garbage once the first chunk is done."""
    proc = start_aig([*args, "-o", out])
    done = out / "manifest" / "done"
    deadline = time.time() + timeout
    try:
        while proc.poll() is None and time.time() < deadline and not any(done.glob("*.json")):
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before the input could be changed"
        n_done = len(list(done.glob("*.json")))
        change.write_bytes(garbage)
        stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.time()))
    except BaseException:
        kill_group(proc)
        raise
    assert proc.returncode == 0, f"{stdout}\n{stderr}"
    return {"done_when_changed": n_done, "stdout": stdout}
