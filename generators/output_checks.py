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


def batch_problems(images, references=None) -> list[str | None]:
    """NON_FINITE, DEGENERATE or None for each image of a float tensor N,C,H,W with values in [0, 1], on the
    device it lives on (one small copy back).

    Degenerate: every channel is flat (one colour) while the reference (the input it reconstructs) is not;
    without references (text-to-image) any one-colour image is degenerate.
    """
    return problems_of(problem_flags(images, references).tolist())


def problem_flags(images, references=None):
    """batch_problems as a bool tensor N,2 (finite, flat) left on the device, for callers that copy it back
    later (with the images)."""
    import torch

    finite = images.isfinite().flatten(1).all(1)
    flat = spreads(images.nan_to_num(0)) < FLAT_STD
    if references is not None:
        flat &= spreads(references) >= 4 * FLAT_STD
    return torch.stack([finite, flat], 1)


def problems_of(flags: list) -> list[str | None]:
    """batch_problems from (finite, flat) pairs."""
    return [None if ok and not d else NON_FINITE if not ok else DEGENERATE for ok, d in flags]


def spreads(images):
    """The largest per-channel standard deviation of each image of N,C,H,W: 0 for one flat colour."""
    return images.float().flatten(2).std(dim=2, correction=0).amax(1)


def problem_message(problem: str, model: str, upcast: bool) -> str:
    if problem == NON_FINITE:
        return (f"'{model}' produced non-finite values (NaN or inf)"
                f"{' even after a retry in float32' if upcast else ''}; nothing stored")
    return f"'{model}' produced a flat image (standard deviation below {FLAT_STD * 255:g}/255) from a non-flat input"


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio (dB, capped at PSNR_CAP) of two uint8 images (arrays or PIL) of one shape."""
    import numpy as np

    return psnr_of_mse(float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def mean_squared_errors(a, b):
    """Mean squared error of each pair of uint8 images in tensors N,..., as a float64 tensor on their device
    (where sums of squared byte differences are exact); psnr_of_mse turns each into the PSNR."""
    return (a.double() - b.double()).pow(2).flatten(1).mean(1)


def psnr_of_mse(mse: float) -> float:
    import math

    return PSNR_CAP if mse == 0 else round(min(PSNR_CAP, 10 * math.log10(255.0**2 / mse)), 3)
