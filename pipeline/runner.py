"""Executors that run stage functions: embedded/remote Ray, or in-process for debugging."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from .config import RunnerConfig


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

    def close(self) -> None:
        pass


class RayExecutor:
    """Runs calls as Ray tasks (one CPU each), on an embedded local Ray or an existing cluster."""

    name = "ray"

    def __init__(self, cfg: RunnerConfig):
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        import ray

        self._ray = ray
        self.max_retries = cfg.max_retries
        address = cfg.ray_address or os.environ.get("RAY_ADDRESS") or None
        start = time.perf_counter()
        self._owned = not ray.is_initialized()
        if self._owned:
            common = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
            if address:
                ray.init(address=address, **common)
            else:
                ray.init(num_cpus=cfg.workers or os.cpu_count() or 1, object_store_memory=256 * 1024**2, **common)
        self.startup_s = time.perf_counter() - start
        self.address = address or "local"
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))

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

    def close(self) -> None:
        if self._owned:
            self._ray.shutdown()


def make_executor(cfg: RunnerConfig):
    return RayExecutor(cfg) if cfg.executor == "ray" else LocalExecutor()
