"""Shared by the benchmarks: time a module attribute by wrapping it, in the benchmark's own process only."""

from __future__ import annotations

import time


def wrap_timed(phases: dict[str, float], owner, name: str, label: str) -> None:
    """Replace owner.name by a wrapper that adds its run time to phases[label]."""
    fn = getattr(owner, name)

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            phases[label] = phases.get(label, 0.0) + time.perf_counter() - t

    setattr(owner, name, timed)
