"""Pixel scrambling for semantic training images: destroy pixel evidence, keep semantics.

A recipe is drawn once per sample (seeded by its key) at labeling time and stored with the sample; training
applies exactly that recipe.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass


@dataclass(frozen=True)
class ScrambleRanges:
    """Ranges the per-sample recipe is drawn from (method.md: downscale 0.25–0.5x, JPEG q30–70, noise/blur)."""

    scale: tuple[float, float] = (0.25, 0.5)
    jpeg_quality: tuple[int, int] = (30, 70)
    noise_sigma: tuple[float, float] = (0.0, 3.0)  # on the 0–255 scale
    blur_sigma: tuple[float, float] = (0.0, 1.0)
    min_side: int = 32  # never downscale below this


def draw_recipe(key: str, ranges: ScrambleRanges, salt: str = "aig-scramble-v1") -> dict:
    """A deterministic recipe for one sample."""
    import random

    seed = int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    return {
        "seed": seed % 2**63,
        "scale": round(rng.uniform(*ranges.scale), 4),
        "jpeg_quality": rng.randint(*ranges.jpeg_quality),
        "noise_sigma": round(rng.uniform(*ranges.noise_sigma), 3),
        "blur_sigma": round(rng.uniform(*ranges.blur_sigma), 3),
        "min_side": ranges.min_side,
    }


def scramble(img, recipe: dict):
    """Apply a recipe: downscale, Gaussian noise, blur, JPEG re-encode. Same recipe and image, same bytes."""
    import numpy as np
    from PIL import Image, ImageFilter

    img = img.convert("RGB")
    w, h = img.size
    scale = max(recipe["scale"], recipe.get("min_side", 32) / max(1, min(w, h)))
    if scale < 1:
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    if recipe.get("noise_sigma", 0) > 0:
        rng = np.random.default_rng(recipe["seed"])
        a = np.asarray(img, np.float32) + rng.normal(0, recipe["noise_sigma"], (img.height, img.width, 3))
        img = Image.fromarray(a.round().clip(0, 255).astype(np.uint8))
    if recipe.get("blur_sigma", 0) > 0:
        img = img.filter(ImageFilter.GaussianBlur(recipe["blur_sigma"]))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(recipe["jpeg_quality"]))
    buf.seek(0)
    return Image.open(buf).convert("RGB")
