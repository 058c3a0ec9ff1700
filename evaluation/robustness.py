"""Post-processing applied to both classes before scoring: the robustness sweep."""

from __future__ import annotations

import re

SWEEP = ("jpeg95", "jpeg75", "jpeg50", "resize0.5", "resize2", "crop0.75")
_SPEC = re.compile(r"^(jpeg)(\d{1,3})$|^(resize|crop)(\d*\.?\d+)$")


def check(name: str) -> str:
    """Validate a perturbation name: none, jpegQ (1-100), resizeF (>0), cropF (0-1]."""
    if name == "none":
        return name
    m = _SPEC.match(name)
    if not m:
        raise ValueError(f"perturbation {name!r} unknown: use none, jpegQ (e.g. jpeg75), resizeF (resize0.5) or cropF (crop0.75)")
    if m.group(1) and not 1 <= int(m.group(2)) <= 100:
        raise ValueError(f"perturbation {name!r}: JPEG quality must be 1-100")
    if m.group(3) == "resize" and not float(m.group(4)) > 0:
        raise ValueError(f"perturbation {name!r}: resize factor must be > 0")
    if m.group(3) == "crop" and not 0 < float(m.group(4)) <= 1:
        raise ValueError(f"perturbation {name!r}: crop fraction must be in (0, 1]")
    return name


def apply(img, name: str):
    """The perturbed RGB image (deterministic)."""
    import io

    from PIL import Image

    check(name)
    if name == "none":
        return img
    m = _SPEC.match(name)
    if m.group(1):
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=int(m.group(2)))
        with Image.open(io.BytesIO(buf.getvalue())) as out:
            return out.convert("RGB")
    f = float(m.group(4))
    w, h = img.size
    if m.group(3) == "resize":
        return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BICUBIC)
    cw, ch = max(1, round(w * f)), max(1, round(h * f))
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))
