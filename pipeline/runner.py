"""Executors that run stage functions: embedded/remote Ray, or in-process for debugging."""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from .config import RunnerConfig

OBJECT_STORE_BYTES = 256 * 1024**2  # chunks travel as file paths and small reports: a small store suffices


def worker_location() -> dict:
    """Where this call runs: host, pid, and the Ray node id inside a Ray worker (recorded in done markers)."""
    where = {"host": socket.gethostname(), "pid": os.getpid()}
    ray = sys.modules.get("ray")  # only a Ray worker has it imported; never import it here
    if ray is not None and ray.is_initialized():
        where["ray_node_id"] = ray.get_runtime_context().get_node_id()
    return where


class LocalExecutor:
    """Runs calls one after another in this process."""

    name = "local"
    startup_s = 0.0
    workers = 1

    def map(self, fn: Callable, calls: list[tuple]) -> Iterator[tuple[int, Any]]:
        for i, args in enumerate(calls):
            try:
                yield i, fn(*args)
            except Exception as e:  # the caller decides what a failed call means
                yield i, e

    def warm(self, module: str) -> None:
        pass

    def map_actors(self, cls: type, init_args: tuple, method: str, calls: list[tuple],
                   gpus_per_worker: float = -1.0) -> Iterator[tuple[int, Any]]:
        """One instance of cls (a model loaded once), its method called for each call in turn.

        One torch thread, as in every CPU actor: CPU results depend on the thread count, and the same
        inputs must give the same bytes whichever executor ran them.
        """
        instance = cls(*init_args, threads=1)
        yield from self.map(getattr(instance, method), calls)

    def close(self) -> None:
        pass


class ActorHost:
    """Builds cls inside a Ray actor. An error while building (a model that fails to load) is raised by every
    call rather than killing the actor, so the driver gets the error itself (a dead actor's creation error
    reaches it only as text, with Ray's traceback printed)."""

    def __init__(self, cls: type, init_args: tuple, **kwargs):
        try:
            self.instance, self.error = cls(*init_args, **kwargs), None
        except Exception as e:
            self.instance, self.error = None, e

    def call(self, method: str, *args):
        if self.error is not None:
            raise self.error
        return getattr(self.instance, method)(*args)


def start_ray(address: str | None, num_cpus: int, log_to_driver: bool = False):
    """Ray for this process: the one already initialised, the cluster at `address` (or $RAY_ADDRESS), else a fresh
    local Ray with num_cpus CPUs. Returns (the ray module, whether this call started it, "local" or the address)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    owned = not ray.is_initialized()
    if owned:
        common = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=log_to_driver)
        if address:
            ray.init(address=address, **common)
        elif not log_to_driver:
            _start_lean_local(ray, num_cpus, common)
        else:
            # address="local": a fresh Ray of our own, never a `ray start` cluster found in /tmp/ray by chance
            ray.init(address="local", num_cpus=num_cpus, object_store_memory=OBJECT_STORE_BYTES, **common)
    return ray, owned, address or "local"


def _start_lean_local(ray, num_cpus: int, common: dict) -> None:
    """A fresh local Ray of the processes the pipeline uses: GCS, raylet and workers, without the dashboard's
    API server, the autoscaler monitor and the log monitor (a fixed local cluster whose workers' logs stay in
    their files). On a few CPUs those cost seconds at start, on the driver's critical path, and at shutdown.
    Started as `ray.init(address="local")` starts its head node, through Ray's private head-node API (Ray is
    pinned; tests/test_units.py checks which processes run); `ray.shutdown()` stops it the same way."""
    from ray._private import worker
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    class LeanHead(Node):
        def start_api_server(self, **_):
            self._webui_url = None

    params = RayParams(num_cpus=num_cpus, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                       no_monitor=True, include_log_monitor=False)
    node = LeanHead(params, head=True, shutdown_at_exit=False, spawn_reaper=True, ray_init_cluster=True)
    try:
        ray.init(address=node.address, **common)
    except BaseException:
        node.kill_all_processes(check_alive=False, allow_graceful=False)
        raise
    worker._global_node = node  # our head node: ray.shutdown() (and its atexit hook) stops its processes


class RayExecutor:
    """Runs calls as Ray tasks (one CPU each), on an embedded local Ray or an existing cluster."""

    name = "ray"

    def __init__(self, cfg: RunnerConfig):
        start = time.perf_counter()
        self._ray, self._owned, self.address = start_ray(cfg.ray_address, cfg.workers or os.cpu_count() or 1)
        self.startup_s = time.perf_counter() - start
        self.max_retries = cfg.max_retries
        self.workers = max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def warm(self, module: str) -> None:
        """Import `module` in every worker now, while the driver is still busy (fire and forget): the first
        tasks then find the imports done."""
        self._warm = [self._ray.remote(num_cpus=1, max_retries=0)(_import).remote(module)
                      for _ in range(self.workers)]

    def map(self, fn: Callable, calls: list[tuple]) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(fn)
        pending: dict[Any, int] = {}
        queue = list(enumerate(calls))[::-1]
        limit = 2 * self.workers
        while queue or pending:
            while queue and len(pending) < limit:
                i, args = queue.pop()
                pending[remote.remote(*args)] = i
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                i = pending.pop(ref)
                try:
                    yield i, ray.get(ref)
                except Exception as e:  # task error or worker crash after retries
                    yield i, e

    def map_actors(self, cls: type, init_args: tuple, method: str, calls: list[tuple],
                   gpus_per_worker: float = -1.0) -> Iterator[tuple[int, Any]]:
        """An actor pool: each actor builds cls once (loads its model), then takes calls as it frees up.

        gpus_per_worker < 0 means one GPU per actor when the cluster has GPUs, else CPU actors. A GPU actor
        takes up to cls.chunks_in_flight calls at a time (in threads; the worker serialises its model use).
        """
        ray = self._ray
        gpus = ray.cluster_resources().get("GPU", 0)
        per = (1.0 if gpus else 0.0) if gpus_per_worker < 0 else gpus_per_worker
        if per > 0 and gpus < per:
            raise RuntimeError(f"{per} GPU(s) per worker requested but the cluster has {gpus:g}")
        n = max(1, min(len(calls), int(gpus // per) if per else self.workers))
        # A GPU actor may take more than one chunk at a time (the worker's `chunks_in_flight`), so that one
        # chunk's decoding and writing on the CPU overlap another's model work.
        slots = max(1, getattr(cls, "chunks_in_flight", 1)) if per > 0 else 1
        actor_cls = ray.remote(num_cpus=1, num_gpus=per, max_restarts=1, max_task_retries=self.max_retries,
                               max_concurrency=slots)(ActorHost)
        actors = [actor_cls.remote(cls, init_args, threads=1) for _ in range(n)]  # see LocalExecutor.map_actors
        idle = [actor for actor in actors for _ in range(slots)]
        pending: dict[Any, tuple[int, Any]] = {}
        queue = list(enumerate(calls))[::-1]
        try:
            while queue or pending:
                while queue and idle:
                    i, args = queue.pop()
                    actor = idle.pop()
                    pending[actor.call.remote(method, *args)] = (i, actor)
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i, actor = pending.pop(ref)
                    idle.append(actor)
                    try:
                        yield i, ray.get(ref)
                    except Exception as e:  # model load failure, task error or actor death after restarts
                        yield i, e
        finally:
            for actor in actors:
                ray.kill(actor)

    def close(self) -> None:
        if self._owned:
            self._ray.shutdown()


def _import(module: str) -> None:
    import importlib

    importlib.import_module(module)


def make_executor(cfg: RunnerConfig):
    return RayExecutor(cfg) if cfg.executor == "ray" else LocalExecutor()
