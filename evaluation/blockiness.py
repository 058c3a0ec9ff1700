"""JPEG-grid (blockiness) statistic of decoded pixels: a block-edge impairment ratio over 8x8 boundaries.

The mean absolute luma difference between neighbouring pixels is taken per column (and row) phase
modulo 8; JPEG's block boundaries make one phase stand out. The statistic is that phase's mean over the
mean of the other seven, averaged over both axes (GBIM-style, Wu & Yuen 1997; the grid's phase is
found, not assumed, so a crop off the grid is still seen): about 1 without a grid, above it with one.
"""

from __future__ import annotations

import numpy as np

BLOCK = 8


def _axis_ratio(diffs: np.ndarray) -> float:
    """diffs: |Y[:, x+1] - Y[:, x]| (columns are the boundaries x|x+1); grid-phase mean / other phases' mean."""
    n = diffs.shape[1] // BLOCK * BLOCK
    if n < BLOCK:
        return float("nan")
    phases = diffs[:, :n].reshape(diffs.shape[0], -1, BLOCK).mean(axis=(0, 1))
    grid = int(np.argmax(phases))
    rest = np.delete(phases, grid).mean()
    return float(phases[grid] / rest) if rest > 0 else 1.0


def blockiness(rgb: np.ndarray) -> float:
    """rgb: H,W,3 uint8. About 1.0 for an image without an 8x8 grid; higher the stronger the grid."""
    y = rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    ratios = [_axis_ratio(np.abs(np.diff(y, axis=1))), _axis_ratio(np.abs(np.diff(y, axis=0)).T)]
    ratios = [r for r in ratios if not np.isnan(r)]
    return round(float(np.mean(ratios)), 4) if ratios else float("nan")
