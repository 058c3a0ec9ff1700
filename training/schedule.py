"""Learning-rate schedule: linear warm-up then cosine decay to min_ratio of the peak (pure)."""

from __future__ import annotations

import math


def lr_at(step: int, peak: float, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """LR for optimizer step `step` (0-based) of `total`."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))
