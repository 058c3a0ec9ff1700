"""Generator ids: short, stable, and safe inside WebDataset keys (no dots, no slashes)."""

from __future__ import annotations

import re


def generator_name(model: str, subfolder: str | None = None) -> str:
    """'stabilityai/sd-vae-ft-mse' -> 'sd_vae_ft_mse'; 'embedded' -> 'tinyvae'; subfolder appended."""
    if model == "embedded":
        base = "tinyvae"
    else:
        base = model.rstrip("/").split("/")[-1]
    if subfolder:
        base = f"{base}_{subfolder}"
    name = re.sub(r"[^a-z0-9]+", "_", base.lower()).strip("_")
    return name or "model"
