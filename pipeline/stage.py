"""The Stage protocol: what one stage of work declares so that the chunk driver (`driver.run_chunks`) can run it.

A stage is a worker (an actor class that loads its model once, or a plain function run as one task per chunk)
plus a fast driver-side check and what it reads. Stages that need other folders' workers (the model stages of
`build-data`) are registered by the composition root (`aig/stages.py`), so this package never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import BuildConfig


def _nothing() -> None:
    return None


def _no_fatal(err: BaseException) -> BaseException | None:
    return None


@dataclass(frozen=True)
class Chunk:
    """One unit of work: its done marker's name, its size (inputs, for progress) and the worker call's arguments."""

    name: str
    size: int
    args: tuple


@dataclass(frozen=True)
class Stage:
    """A stage: its name (done markers' `stage`), a label (progress bar, timers), its output group, its worker.

    worker: an actor class built once per actor from `init_args` whose `method` is called per chunk, or (method
    None) a function run as one task per chunk. check: the driver-side check (config only, seconds), run before
    anything starts. reads: the rows it reads, as {output group: {chunk number: rows}}. fatal: the error behind a
    chunk's error that stops the whole stage (a model that cannot load), else None. isolate: how to redo a
    chunk whose worker crashed, input by input (its result replaces the error); without it the error is
    collected and the chunk stays to do.
    """

    name: str
    label: str
    group: str
    worker: Any
    init_args: tuple = ()
    method: str | None = "run_chunk"
    check: Callable[[], object] = _nothing
    reads: Callable[[Path], dict[str, dict[int, list[dict]]]] | None = None
    fatal: Callable[[BaseException], BaseException | None] = _no_fatal
    isolate: Callable[[Any, Chunk, BaseException], dict] | None = None


# name -> function(cfg) -> [Stage] (one per configured model). Filled by the composition root (aig/stages.py).
STAGES: dict[str, Callable[[BuildConfig], list[Stage]]] = {}


def register_stage(name: str):
    """Decorator: register the function that gives a stage's Stage objects for a build config."""
    def add(fn):
        STAGES[name] = fn
        return fn
    return add


def checked_stages(cfg: BuildConfig, name: str) -> list[Stage]:
    """The registered stage's Stage objects, each checked in the driver (fast failure for a bad id or path)."""
    if name not in STAGES:
        raise ValueError(f"no worker registered for the stage '{name}': build through aig "
                         "(the `aig` command or `aig.build_data`), which registers them")
    stages = STAGES[name](cfg)
    for stage in stages:
        stage.check()
    return stages
