"""JPEG-grid statistic of decoded pixels: the blocking measure K of Fan & de Queiroz (2003, "Identification
of bitmap compression history: JPEG detection and quantizer estimation").

For each 8x8 block, Z = |A - B - C + D| over a 2x2 neighbourhood is taken inside the block (pixels 3-4) and
across its corner (pixels 7-8); K is the L1 distance between the two Z histograms: near 0 without a JPEG
grid, larger with one. The grid's phase is found (the row/column phase with the largest mean neighbour
difference), not assumed, so a crop off the source's grid is still seen. An autoencoder's own periodic
artifacts raise boundary differences too, but they do not split the two histograms as quantization does.
"""

from __future__ import annotations

import numpy as np

BLOCK = 8
GRID_K = 0.4  # K at or above this: the pixels carry a JPEG grid (decoded JPEGs of q <= 95: 0.5-0.8; none: < 0.3)


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


def blockiness(rgb: np.ndarray) -> float:
    """rgb: H,W,3 uint8. The K measure (0..2); NaN for an image under 2 blocks a side."""
    y = _luma(rgb)
    if min(y.shape) < 2 * BLOCK:
        return float("nan")
    oy, ox = _phase(y, 0), _phase(y, 1)
    inside, corner = _z(y, oy, ox, 3), _z(y, oy, ox, BLOCK - 1)
    if not inside.size or not corner.size:
        return float("nan")
    bins = np.arange(257)
    hi = np.histogram(inside, bins)[0] / inside.size
    hc = np.histogram(corner, bins)[0] / corner.size
    return round(float(np.abs(hi - hc).sum()), 4)


def jpeg_trace(fmt: str, k: float) -> str:
    """'yes' when the stored file is a JPEG or its pixels carry a JPEG grid (K >= GRID_K), else 'no'."""
    return "yes" if fmt == "JPEG" or (k == k and k >= GRID_K) else "no"
