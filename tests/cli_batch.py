"""Run several `aig` commands in ONE fresh interpreter, each exactly as the console script runs it
(`aig.cli.app` with its arguments), so that the heavy imports are paid once; per command: exit code,
stdout and stderr. Usage from a test: `run_aig_batch([[args...], ...])`."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path


def run_aig_batch(commands: list[list]) -> list[subprocess.CompletedProcess]:
    from conftest import aig_env

    with tempfile.TemporaryDirectory() as tmp:
        plan, out = Path(tmp, "plan.json"), Path(tmp, "out.json")
        plan.write_text(json.dumps([[str(a) for a in args] for args in commands]))
        proc = subprocess.run([sys.executable, __file__, str(plan), str(out)], capture_output=True, text=True,
                              env=aig_env(), timeout=600)
        if not out.is_file():
            raise AssertionError(f"the command batch died ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return [subprocess.CompletedProcess(["aig", *args], r["rc"], r["stdout"], r["stderr"])
                for args, r in zip(commands, json.loads(out.read_text()))]


def _main(plan: str, out: str) -> None:
    from aig.cli import app

    results = []
    for args in json.loads(Path(plan).read_text()):
        stdout, stderr, rc = io.StringIO(), io.StringIO(), 0
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                app(args, prog_name="aig")
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else int(e.code is not None)
            except Exception:  # a traceback, as the console script would print it
                traceback.print_exc()
                rc = 1
        results.append({"rc": rc, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()})
    Path(out).write_text(json.dumps(results))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
