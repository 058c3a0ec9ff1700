"""A config's adapter to the training loop (the adapters import torch and friends: loaded on first use)."""

from __future__ import annotations

from .config import TrainConfig


def adapter_for(cfg: TrainConfig):
    if cfg.branch == "semantic":
        from .semantic import SemanticAdapter

        return SemanticAdapter(cfg)
    from .pixel import PixelAdapter

    return PixelAdapter(cfg)
