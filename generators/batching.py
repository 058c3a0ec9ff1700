"""Batches grouped by image size, with out-of-memory batches split in halves and retried."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


def is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def _run(batch: list, fn: Callable[[list, int], list], splits: int) -> list:
    try:
        return fn(batch, splits)
    except Exception as e:  # only out-of-memory is handled here
        if not is_oom(e) or len(batch) == 1:
            raise
        _free_cuda_cache()
        half = len(batch) // 2
        return _run(batch[:half], fn, splits + 1) + _run(batch[half:], fn, splits + 1)


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_in_batches(items: list, batch_size: int, key: Callable[[Any], Hashable],
                   fn: Callable[[list, int], list]) -> list:
    """fn(batch, splits) -> one result per item; results come back in the order of `items`.

    Items with equal key (e.g. image size) share batches; `splits` tells fn how often its batch was
    halved after running out of memory, so the caller can record it.
    """
    groups: dict[Hashable, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(key(item), []).append(i)
    results: list = [None] * len(items)
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            part = indices[start:start + batch_size]
            for i, r in zip(part, _run([items[i] for i in part], fn, 0)):
                results[i] = r
    return results
