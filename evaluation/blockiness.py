"""JPEG-grid statistic of decoded pixels: the blocking measure K of Fan & de Queiroz (2003, "Identification
of bitmap compression history: JPEG detection and quantizer estimation").

For each 8x8 block, Z = |A - B - C + D| over a 2x2 neighbourhood is taken inside the block (pixels 3-4) and
across its corner (pixels 7-8); K is the L1 distance between the two Z histograms. Content and sampling
give K a floor, so the same K on off-grid phases is subtracted: about 0 without a JPEG grid, above with one. The grid's phase is found (the row/column phase with the largest mean neighbour
difference), not assumed, so a crop off the source's grid is still seen. An autoencoder's own periodic
artifacts raise boundary differences too, but they do not split the two histograms as quantization does.
"""

from __future__ import annotations

import numpy as np

BLOCK = 8
GRID_K = 0.1  # at or above: the pixels carry a JPEG grid (decoded q90 JPEGs of 256x192: 0.19-0.30; never JPEG: < 0.02)
MIN_BLOCKS = 500  # fewer blocks (under about 200x200 px): not measured
EDGES = np.array([0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, np.inf])  # Z histogram bins: coarse, so K is not sampling noise
OFF_GRID = ((1, 1), (2, 2), (3, 3), (1, 3), (3, 1), (2, 6))  # phase shifts with no boundary between the pixels


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _phase(y: np.ndarray, axis: int) -> int:
    """Offset of the block starts along `axis`: the boundary phase with the largest mean difference, plus 1."""
    d = np.abs(np.diff(y, axis=axis))
    d = d if axis == 1 else d.T
    n = d.shape[1] // BLOCK * BLOCK
    phases = d[:, :n].reshape(d.shape[0], -1, BLOCK).mean(axis=(0, 1))
    return (int(np.argmax(phases)) + 1) % BLOCK


def _z(y: np.ndarray, oy: int, ox: int, off: int) -> np.ndarray:
    a = y[oy + off:-1:BLOCK, ox + off:-1:BLOCK]
    h, w = a.shape
    b = y[oy + off:-1:BLOCK, ox + off + 1::BLOCK][:h, :w]
    c = y[oy + off + 1::BLOCK, ox + off:-1:BLOCK][:h, :w]
    d = y[oy + off + 1::BLOCK, ox + off + 1::BLOCK][:h, :w]
    h, w = min(a.shape[0], b.shape[0], c.shape[0], d.shape[0]), min(a.shape[1], b.shape[1], c.shape[1], d.shape[1])
    return np.abs(a[:h, :w] - b[:h, :w] - c[:h, :w] + d[:h, :w]).ravel()


def _k(y: np.ndarray, oy: int, ox: int) -> float:
    inside, corner = _z(y, oy, ox, 3), _z(y, oy, ox, BLOCK - 1)
    hi = np.histogram(inside, EDGES)[0] / inside.size
    hc = np.histogram(corner, EDGES)[0] / corner.size
    return float(np.abs(hi - hc).sum())


def blockiness(rgb: np.ndarray) -> float:
    """rgb: H,W,3 uint8. K on the found grid minus its mean on off-grid phases (where no block boundary lies
    between the compared pixels): about 0 without a JPEG grid, 0.15-0.3 with one (q 90). NaN for an image
    with fewer than MIN_BLOCKS blocks (its histograms are too sparse to tell)."""
    y = _luma(rgb)
    if (y.shape[0] // BLOCK - 1) * (y.shape[1] // BLOCK - 1) < MIN_BLOCKS:
        return float("nan")
    oy, ox = _phase(y, 0), _phase(y, 1)
    null = np.mean([_k(y, (oy + s) % BLOCK, (ox + t) % BLOCK) for s, t in OFF_GRID])
    return round(_k(y, oy, ox) - float(null), 4)


def jpeg_trace(fmt: str, k: float) -> str:
    """'yes' when the stored file is a JPEG or its pixels carry a JPEG grid (K >= GRID_K), else 'no'."""
    return "yes" if fmt == "JPEG" or (k == k and k >= GRID_K) else "no"
