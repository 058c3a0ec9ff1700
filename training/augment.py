"""Paired augmentation: parameters are drawn once per pair and applied identically to the real image and
its reconstruction, so the only difference left between the classes is the artifact. Crops, never resizes
(except the optional, recorded down/up-sampling)."""

from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass


@dataclass
class AugmentRecipe:
    crop_size: int = 64
    flip_p: float = 0.5
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (65, 100)
    blur_p: float = 0.1
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    resample_p: float = 0.0           # down/up-sampling before the crop
    resample_scale: tuple[float, float] = (0.5, 1.5)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentRecipe":
        d = dict(d)
        for k in ("jpeg_quality", "blur_sigma", "resample_scale"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)

    def validate(self) -> None:
        for name in ("flip_p", "jpeg_p", "blur_p", "resample_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augmentation {name} must be within 0..1")
        lo, hi = self.jpeg_quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError("augmentation jpeg_quality must be a range within 1..100, low first")
        if self.crop_size < 8:
            raise ValueError("crop size must be >= 8")
        if not 0 < self.resample_scale[0] <= self.resample_scale[1] or self.blur_sigma[0] > self.blur_sigma[1]:
            raise ValueError("augmentation ranges must be positive, low first")


def sample_params(rng: random.Random, width: int, height: int, r: AugmentRecipe) -> dict:
    """Draw one pair's augmentation (pure given the rng state)."""
    p: dict = {}
    if r.resample_p and rng.random() < r.resample_p:
        p["scale"] = rng.uniform(*r.resample_scale)
        width, height = max(1, round(width * p["scale"])), max(1, round(height * p["scale"]))
    c = r.crop_size
    p["crop"] = (rng.randint(0, max(0, width - c)), rng.randint(0, max(0, height - c)))
    p["flip"] = rng.random() < r.flip_p
    if r.blur_p and rng.random() < r.blur_p:
        p["blur"] = rng.uniform(*r.blur_sigma)
    if r.jpeg_p and rng.random() < r.jpeg_p:
        p["jpeg"] = rng.randint(*r.jpeg_quality)
    return p


def apply_params(img, p: dict, crop_size: int):
    """Apply drawn parameters to one PIL image: (resample) -> crop -> flip -> blur -> JPEG."""
    from PIL import Image, ImageFilter

    if "scale" in p:
        w, h = img.size
        img = img.resize((max(1, round(w * p["scale"])), max(1, round(h * p["scale"]))), Image.Resampling.BICUBIC)
    x, y = p["crop"]
    img = img.crop((x, y, x + crop_size, y + crop_size))  # past the edge is filled with black
    if p.get("flip"):
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if "blur" in p:
        img = img.filter(ImageFilter.GaussianBlur(p["blur"]))
    if "jpeg" in p:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=p["jpeg"])
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img


def pair_crops(real, fake, rng: random.Random, recipe: AugmentRecipe, n: int) -> list[tuple]:
    """n augmented (real, fake) crop pairs with identical parameters inside each pair."""
    if real.size != fake.size:
        raise ValueError(f"pair sizes differ: {real.size} vs {fake.size}")
    out = []
    for _ in range(n):
        p = sample_params(rng, *real.size, recipe)
        out.append((apply_params(real, p, recipe.crop_size), apply_params(fake, p, recipe.crop_size), p))
    return out
