"""Decode, validate and canonicalise one image: bytes in, RGB image or a rejection reason out."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from manifests.errors import AigError

from .jpeg_quality import estimate_quality

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
# Leading bytes of the allowed formats: such a file that Pillow cannot open has a damaged header.
MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF87a": "GIF", b"GIF89a": "GIF",
         b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}

# Rejection reasons, as stored in the failures table.
EMPTY_FILE = "empty_file"
NOT_AN_IMAGE = "not_an_image"
UNSUPPORTED_FORMAT = "unsupported_format"
TRUNCATED = "truncated"
DECODE_ERROR = "decode_error"
ANIMATED = "animated"
TOO_SMALL = "too_small"
TOO_LARGE = "too_large"


class Rejected(AigError):
    """The input is not a usable image; `reason` is one of the constants above."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodeLimits:
    min_size: int
    max_pixels: int


@dataclass(frozen=True)
class SourceInfo:
    format: str
    mode: str
    width: int  # after EXIF orientation
    height: int
    quality: int | None  # estimated JPEG quality (JPEG inputs only)


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        pass
    except Image.DecompressionBombError as e:
        raise Rejected(TOO_LARGE, str(e)) from None
    except (OSError, SyntaxError, ValueError) as e:
        _check_riff_size(data)
        raise Rejected(DECODE_ERROR, f"header: {e}") from None
    try:  # identify only: never decode a format outside the allow-list
        fmt = Image.open(io.BytesIO(data)).format
    except Exception:
        magic = next((fmt for m, fmt in MAGIC.items() if data.startswith(m)), None)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            magic = "WEBP"
        if magic:
            _check_riff_size(data)
            raise Rejected(DECODE_ERROR, f"{magic} signature but the header does not parse") from None
        raise Rejected(NOT_AN_IMAGE, "no image format recognised") from None
    raise Rejected(UNSUPPORTED_FORMAT, f"{fmt} is not one of {', '.join(ALLOWED_FORMATS)}")


def _check_riff_size(data: bytes) -> None:
    """WebP (RIFF) states its length up front: fewer bytes than that is a truncated file."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 12:
        declared = int.from_bytes(data[4:8], "little") + 8
        if declared > len(data):
            raise Rejected(TRUNCATED, f"WEBP: {len(data)} of {declared} bytes")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img, dtype=np.int64)
        scale = 257.0 if mode.startswith("I;16") or a.max(initial=0) > 255 else 1.0
        a = np.clip(np.rint(a / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if mode == "F":
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min(initial=0.0)), float(a.max(initial=1.0))
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        return Image.fromarray(np.rint(a * 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def decode_image(data: bytes, limits: DecodeLimits) -> tuple[Image.Image, SourceInfo]:
    """Validate and decode to an RGB image with EXIF orientation applied; raise Rejected otherwise."""
    if not data:
        raise Rejected(EMPTY_FILE, "0 bytes")
    Image.MAX_IMAGE_PIXELS = limits.max_pixels  # Pillow errors only above 2x this; the check below is exact
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = _open(data)
    fmt = img.format or "?"
    w, h = img.size
    if w * h > limits.max_pixels:
        raise Rejected(TOO_LARGE, f"{w}x{h} = {w * h} pixels exceeds the limit of {limits.max_pixels}")
    if getattr(img, "is_animated", False) and getattr(img, "n_frames", 1) > 1:
        raise Rejected(ANIMATED, f"{fmt} with {img.n_frames} frames")
    mode = img.mode
    quality = estimate_quality(getattr(img, "quantization", None)) if fmt == "JPEG" else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # palette/EXIF warnings are not errors
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
    except Image.DecompressionBombError as e:
        raise Rejected(TOO_LARGE, str(e)) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        msg = str(e)
        reason = TRUNCATED if "truncat" in msg.lower() or isinstance(e, EOFError) else DECODE_ERROR
        raise Rejected(reason, f"{fmt}: {msg}") from None
    if min(rgb.size) < limits.min_size:
        raise Rejected(TOO_SMALL, f"{rgb.width}x{rgb.height} is below the minimum side of {limits.min_size} px")
    return rgb, SourceInfo(fmt, mode, rgb.width, rgb.height, quality)


def canonicalize(img: Image.Image, policy: str, size: int) -> Image.Image:
    """cap: longest side <= size (downscale only); center-crop: central square resized to size; native: as is."""
    if policy == "native":
        return img
    if policy == "cap":
        longest = max(img.size)
        if longest <= size:
            return img
        scale = size / longest
        new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        return img.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if policy == "center-crop":
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        square = img.crop((left, top, left + side, top + side))
        if side == size:
            return square
        return square.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    raise ValueError(f"unknown canonicalisation policy {policy!r}")


def encode_image(img: Image.Image, image_format: str, jpeg_quality: int) -> tuple[bytes, str]:
    """Encode deterministically (no metadata); returns (bytes, file extension)."""
    buf = io.BytesIO()
    if image_format == "png":
        img.save(buf, format="PNG", compress_level=6)
        return buf.getvalue(), "png"
    if image_format == "jpeg":
        img.save(buf, format="JPEG", quality=jpeg_quality, subsampling=0 if jpeg_quality >= 90 else 2)
        return buf.getvalue(), "jpg"
    raise ValueError(f"unknown image format {image_format!r}")
