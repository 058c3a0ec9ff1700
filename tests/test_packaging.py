"""The built wheel is one package, `aig`, that works installed anywhere: CLI, a tiny build, the layering contract."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel (no dependencies), installed into a bare folder; returns that folder."""
    tmp = tmp_path_factory.mktemp("pkg")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp / "w",
                    ROOT], check=True, capture_output=True)
    wheel = next((tmp / "w").glob("aig-*.whl"))
    tops = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"aig"}
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", tmp / "site", wheel],
                   check=True, capture_output=True)
    return tmp / "site"


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env={"PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1",
                                                                  "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)


def test_wheel_runs_from_anywhere(installed, tmp_path):
    from PIL import Image

    help_ = _run(installed, tmp_path, "-m", "aig", "--help")
    assert help_.returncode == 0 and "build-data" in help_.stdout, help_.stderr
    (tmp_path / "in").mkdir()
    for i in range(2):
        Image.new("RGB", (40, 40), (90 * i, 20, 200)).save(tmp_path / "in" / f"{i}.png")
    build = _run(installed, tmp_path, "-m", "aig", "build-data", "--executor", "local", "--stages", "ingest",
                 "--input-dir", str(tmp_path / "in"), "-o", str(tmp_path / "ds"), "--min-size", "16")
    assert build.returncode == 0, build.stderr
    assert "ingest: 2 inputs -> 2 samples, 0 failures" in build.stdout
    code = "import aig, aig.pipeline.build; print(aig.pipeline.build.__file__)"
    assert _run(installed, tmp_path, "-c", code).stdout.startswith(str(installed / "aig" / "pipeline"))


def test_layering_contract(installed, tmp_path):
    """`lint-imports` on the installed tree (the source checkout keeps the folders beside aig/, which it cannot see)."""
    lint = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    proc = subprocess.run([sys.executable, "-c", lint, "--config", ROOT / "pyproject.toml"], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
