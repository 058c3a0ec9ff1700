"""Shared helpers: run the `aig` CLI as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

AIG = str(Path(sys.executable).with_name("aig"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


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


@pytest.fixture
def aig():
    return run_aig
