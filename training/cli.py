"""Plain functions behind `aig train` (the typer command in aig/cli.py only collects options)."""

from __future__ import annotations

from pathlib import Path


PIXEL_ONLY = {"pretrained", "crop_size", "crops_per_pair", "flip_p", "jpeg_p", "jpeg_quality", "blur_p", "blur_sigma",
              "resample_p", "resample_scale", "loader_workers", "shuffle_buffer", "calib_fraction", "calibrate_on"}
SEMANTIC_ONLY = {"gradient_checkpointing", "merge", "max_length"}


def run_branch(branch: str, options: dict) -> dict:
    """Dispatch `aig train --branch BRANCH`; options that do not apply to the branch are refused."""
    from .config import ConfigError

    given = {k for k, v in options.items() if v is not None}
    if branch == "pixel":
        wrong = sorted(given & SEMANTIC_ONLY)
        if wrong:
            raise ConfigError(f"option(s) {', '.join('--' + w.replace('_', '-') for w in wrong)} apply to --branch semantic only")
        return train_branch(pixel_config({k: v for k, v in options.items() if k not in SEMANTIC_ONLY}))
    if branch == "semantic":
        wrong = sorted(given & PIXEL_ONLY)
        if wrong:
            raise ConfigError(f"option(s) {', '.join('--' + w.replace('_', '-') for w in wrong)} apply to --branch pixel only")
        from .semantic import semantic_config

        return train_branch(semantic_config({k: v for k, v in options.items() if k not in PIXEL_ONLY}), "semantic")
    raise ConfigError(f"--branch {branch!r} unknown; use pixel or semantic")


def pixel_config(options: dict):
    """PixelConfig from CLI options (None = default); augmentation keys go to the recipe."""
    from .augment import AugmentRecipe
    from .config import PixelConfig

    cfg = PixelConfig()
    aug = AugmentRecipe()
    for k, v in options.items():
        if v is None:
            continue
        if hasattr(aug, k):
            setattr(aug, k, tuple(v) if isinstance(v, list) else v)
        elif hasattr(cfg, k):
            setattr(cfg, k, v)
        else:
            raise KeyError(k)
    cfg.augment = aug
    cfg.validate()
    return cfg


def train_branch(cfg, branch: str = "pixel") -> dict:
    """Train locally or on Ray Train; returns the summary (export folder, steps, threshold, val metrics)."""
    from aig.manifests.dataset import Dataset

    if not Dataset(cfg.dataset).catalog_path.is_file():
        from .shards import DataError

        raise DataError(f"no dataset at '{cfg.dataset}': build one with `aig build-data -o {cfg.dataset}`")
    if cfg.num_workers >= 1 and (cfg.num_workers > 1 or cfg.ray_address):
        from .distributed import run_on_ray

        return run_on_ray(cfg, branch)
    if branch == "semantic":
        from .semantic import run_semantic

        return run_semantic(cfg)
    from .pixel import run_pixel

    return run_pixel(cfg)
