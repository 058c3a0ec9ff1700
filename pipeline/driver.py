"""The one chunk driver: runs a stage's chunks on an executor with progress, error collection, a stop on a full
disk or a fatal error, a redo of crashed chunks (when the stage can isolate them) and timers."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .stage import Chunk, Stage


@dataclass
class Timers:
    """Seconds per phase, summed over calls (as datatrove's `track_time`), and a stage's chunk timeline."""

    seconds: dict[str, float] = field(default_factory=dict)
    chunk_seconds: list[float] = field(default_factory=list)  # each chunk's own seconds, measured by its worker
    done_at: list[float] = field(default_factory=list)  # seconds from the executor being ready to each result

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    @contextmanager
    def track(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - start)


@dataclass
class StageRun:
    """What running a stage's chunks gave: finished chunks' results, errors of those that stay to do, timers."""

    results: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    timers: Timers = field(default_factory=Timers)

    @property
    def failures(self) -> int:
        return sum(r.get("failures", 0) for r in self.results)


def run_chunks(stage: Stage, chunks: list[Chunk], executor: Callable[[], object], gpus_per_worker: float = -1.0,
               progress: bool = True) -> StageRun:
    """Run the chunks on `executor()` (called only when there is work: a run with nothing to do starts nothing).

    A full disk or the stage's fatal error stops the stage (raised; other chunks cannot do better). A chunk
    whose worker raised is redone input by input when the stage can isolate it, else its error is collected
    and it stays to do. Worker results that carry `timers` ({phase: seconds}) are added to the stage's timers.
    """
    from tqdm import tqdm

    from .shards import is_disk_full

    run = StageRun()
    if not chunks:
        return run
    timers = run.timers
    start = time.perf_counter()
    ex = executor()
    ready = time.perf_counter()
    timers.add("start executor", ready - start)
    calls = [c.args for c in chunks]
    if stage.method is None:
        results = ex.map(stage.worker, calls)
    else:
        results = ex.map_actors(stage.worker, stage.init_args, stage.method, calls, gpus_per_worker)
    bar = tqdm(total=sum(c.size for c in chunks), unit="img", desc=stage.label, mininterval=1.0,
               file=sys.stderr, dynamic_ncols=True, disable=not progress)
    try:
        for i, result in results:
            chunk = chunks[i]
            if isinstance(result, BaseException):
                if is_disk_full(result):
                    raise result  # the caller turns it into a clear error; retrying other chunks cannot help
                if fatal := stage.fatal(result):
                    raise fatal  # e.g. the model cannot run at all: its other chunks cannot do better
                if stage.isolate is not None:
                    with timers.track("isolate crashed chunks"):
                        result = stage.isolate(ex, chunk, result)
            timers.done_at.append(time.perf_counter() - ready)
            if isinstance(result, BaseException):
                run.errors.append(f"{chunk.name}: {type(result).__name__}: {result}")
            else:
                run.results.append(result)
                if "seconds" in result:
                    timers.chunk_seconds.append(result["seconds"])
                for phase, s in (result.get("timers") or {}).items():
                    timers.add(phase, s)
                bar.set_postfix(failed=run.failures, refresh=False)
            bar.update(chunk.size)
    finally:
        bar.close()
        timers.add("chunks", time.perf_counter() - ready)
    return run
