"""Estimate the IJG quality (1..100) a JPEG was saved with, from its luminance quantisation table.

No maintained PyPI package does this; it is the ImageMagick/IJG inversion: libjpeg scales its
standard table by S = 5000/q (q < 50) or 200 - 2q (q >= 50), so S is recovered from the ratio of
the file's table to the standard one.
"""

from __future__ import annotations

# IJG standard luminance table (Annex K), in natural (row-major) order as Pillow returns it.
STD_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)


def estimate_quality(quantization: dict[int, list[int]] | None) -> int | None:
    """Quality from Pillow's `img.quantization` (None for non-JPEG or missing tables)."""
    if not quantization or 0 not in quantization or len(quantization[0]) != 64:
        return None
    table = quantization[0]
    if all(t == 1 for t in table):
        return 100
    ratios = [t / s for t, s in zip(table, STD_LUMINANCE) if 1 < t < 255]  # 1 and 255 are clipped values
    if not ratios:
        return None
    scale = 100.0 * sum(ratios) / len(ratios)
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return max(1, min(100, round(quality)))
