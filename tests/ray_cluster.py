"""A real two-node Ray cluster on this machine, for tests: `ray start --head` plus `ray start --address`.

Each node gets its own ports and custom resource; both share one private --temp-dir. Teardown kills
only this cluster's processes (those whose command line names that temp dir, and their children),
never `ray stop`, which would stop every Ray on the machine.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
PORT_KEYS = ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
             "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")


def ray_env() -> dict[str, str]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    env.pop("RAY_ADDRESS", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_range(taken: set[int]) -> tuple[int, int]:
    """A 64-port range for one node's workers, away from the other node's and from ports in use."""
    while True:
        lo = random.randrange(20000, 60000, 64)
        if not any(lo <= p < lo + 64 for p in taken):
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", lo))
            except OSError:
                continue
            taken.update(range(lo, lo + 64))
            return lo, lo + 63


@dataclass
class RayCluster:
    temp_dir: Path
    address: str = ""
    nodes: dict[str, str] = field(default_factory=dict)  # custom resource name -> Ray node id

    def _start(self, resource: str, head: bool, taken: set[int]) -> None:
        lo, hi = _worker_range(taken)
        args = [RAY, "start", "--num-cpus=1", f"--resources={json.dumps({resource: 1})}",
                f"--temp-dir={self.temp_dir}", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
                f"--min-worker-port={lo}", f"--max-worker-port={hi}", "--object-store-memory=100000000"]
        args += [f"--{k}={free_port()}" for k in PORT_KEYS]
        if head:
            port = free_port()
            args += ["--head", f"--port={port}", "--include-dashboard=false", f"--dashboard-port={free_port()}"]
            self.address = f"127.0.0.1:{port}"
        else:
            args += [f"--address={self.address}"]
        proc = subprocess.run(args, env=ray_env(), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start ({resource}) failed:\n{proc.stdout}\n{proc.stderr}")

    def start(self) -> RayCluster:
        taken: set[int] = set()
        self._start("node_a", True, taken)
        self._start("node_b", False, taken)
        self.nodes = self._wait_for_nodes(2)
        return self

    def _wait_for_nodes(self, n: int, timeout: float = 60) -> dict[str, str]:
        code = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
                "print(json.dumps([[n['NodeID'], n['Resources'], n['Alive']] for n in ray.nodes()]))") % self.address
        deadline = time.time() + timeout
        while True:
            out = subprocess.run([sys.executable, "-c", code], env=ray_env(), capture_output=True, text=True,
                                 timeout=120)
            if out.returncode == 0:
                nodes = {r: nid for nid, res, alive in json.loads(out.stdout.strip().splitlines()[-1])
                         for r in res if alive and r.startswith("node_")}
                if len(nodes) >= n:
                    return nodes
            if time.time() > deadline:
                raise RuntimeError(f"the Ray cluster at {self.address} did not show {n} nodes:\n{out.stderr[-2000:]}")
            time.sleep(1)

    def actor_nodes(self, class_name: str) -> list[str]:
        """Node ids of every actor of that class the cluster ran, finished ones included (GCS actor table)."""
        code = ("import json, ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
                "from ray._private import state; "  # the public ray.util.state needs the dashboard, not started here
                "print(json.dumps([[a['ActorClassName'], a['Address']['NodeID']] for a in state.actors().values()]))"
                ) % self.address
        out = subprocess.run([sys.executable, "-c", code], env=ray_env(), capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"listing the actors of {self.address} failed:\n{out.stderr[-2000:]}")
        return [node for cls, node in json.loads(out.stdout.strip().splitlines()[-1]) if cls == class_name]

    def processes(self) -> list:
        import psutil

        me = psutil.Process()
        skip = {me.pid, *(p.pid for p in me.parents())}  # a test whose own command line names the folder
        mine = []
        for p in psutil.process_iter(["cmdline"]):
            if p.pid in skip:
                continue
            try:
                if any(str(self.temp_dir) in a for a in p.info["cmdline"] or []):
                    mine.append(p)
                    mine += p.children(recursive=True)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return [p for p in {p.pid: p for p in mine}.values() if p.pid not in skip]

    def stop(self) -> None:
        import psutil

        procs = self.processes()
        for p in procs:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=10)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        if not self.processes():
            shutil.rmtree(self.temp_dir, ignore_errors=True)  # Ray's logs and sockets of this cluster


def start_cluster() -> RayCluster:
    # Short path: Ray's unix sockets live under it and their paths must stay under 108 bytes.
    cluster = RayCluster(Path(tempfile.mkdtemp(prefix="aigray-", dir="/tmp")))
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise
