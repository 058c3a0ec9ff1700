"""Checks on a model's output images: non-finite values, near-constant (degenerate) images, and PSNR.

A float16 model can overflow (inf, then NaN) and a broken one can decode every input to one flat colour;
stored, such images would teach a detector "black = fake". Every model stage checks each output here.
"""

from __future__ import annotations

NON_FINITE = "non_finite"
DEGENERATE = "degenerate"
# Spread (standard deviation, pixel values in [0, 1]) below which an image is flat: about 1 grey level of 255.
FLAT_STD = 1.0 / 255
PSNR_CAP = 100.0  # identical images: PSNR is infinite; stored capped so the column stays a plain number


def output_problem(image, reference=None) -> str | None:
    """NON_FINITE, DEGENERATE or None for one float image H,W,C with values in [0, 1].

    Degenerate: every channel is flat (one colour) while the reference (the input it reconstructs) is not;
    without a reference (text-to-image) any one-colour image is degenerate.
    """
    import numpy as np

    a = np.asarray(image, dtype=np.float64)
    if not np.isfinite(a).all():
        return NON_FINITE
    if spread(a) < FLAT_STD and (reference is None or spread(reference) >= 4 * FLAT_STD):
        return DEGENERATE
    return None


def spread(image) -> float:
    """The largest per-channel standard deviation of an H,W,C image: 0 for one flat colour."""
    import numpy as np

    a = np.asarray(image, dtype=np.float64)
    return float(a.reshape(-1, a.shape[-1]).std(axis=0).max())


def problem_message(problem: str, model: str, upcast: bool) -> str:
    if problem == NON_FINITE:
        return (f"'{model}' produced non-finite values (NaN or inf)"
                f"{' even after a retry in float32' if upcast else ''}; nothing stored")
    return f"'{model}' produced a flat image (standard deviation below {FLAT_STD * 255:g}/255) from a non-flat input"


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 images of one shape, capped at PSNR_CAP."""
    import numpy as np

    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    if mse == 0:
        return PSNR_CAP
    return round(min(PSNR_CAP, 10 * np.log10(255.0**2 / mse)), 3)
