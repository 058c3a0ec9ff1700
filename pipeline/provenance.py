"""What produced a run: library versions, the project's git commit, the host."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("aig", "pillow", "numpy", "pyarrow", "duckdb", "ray", "webdataset", "typer",
            "torch", "torchvision", "diffusers", "transformers", "timm")


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    """HEAD of the project checkout, with '+dirty' when it has uncommitted changes; 'unknown' outside git."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def host() -> str:
    return platform.node()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
