"""Shared helpers: run the `aig` CLI as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

AIG = str(Path(sys.executable).with_name("aig"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def aig_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    return env


def run_aig(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([AIG, *map(str, args)], capture_output=True, text=True, env=aig_env(), timeout=300, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"aig {' '.join(map(str, args))} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def sql_rows(dataset: Path, query: str) -> list[dict]:
    import json

    return json.loads(run_aig("sql", "-d", dataset, "--format", "json", query).stdout)


def tar_digests(dataset: Path) -> dict[str, str]:
    import hashlib

    return {p.relative_to(dataset).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((dataset / "shards").glob("**/*.tar"))}


def start_and_kill(args: list, done_dir: Path, pattern: str, at_least: int) -> int:
    """Start `aig ARGS` in its own session, kill -9 it once `at_least` done markers match; returns how many did."""
    import signal
    import time

    proc = subprocess.Popen([AIG, *map(str, args)], env=aig_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if done_dir.is_dir() and len(list(done_dir.glob(pattern))) >= at_least:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return len(list(done_dir.glob(pattern)))


@pytest.fixture(scope="session")
def pixel_dataset(tmp_path_factory):
    """The 12 bundled photos and their reconstructions by the bundled autoencoder (do not modify: copy it)."""
    out = tmp_path_factory.mktemp("pixds") / "ds"
    # the demo's split: 7 train photos (6 pairs, the stereo pair counted apart), 1 val, 4 test
    run_aig("build-data", "-o", out, "--stages", "ingest,reconstruct", "--size", "128", "--executor", "local",
            "--split", "0.5,0.04,0.46")
    return out


@pytest.fixture
def aig():
    return run_aig
