"""Decode, validate and canonicalise one image: bytes in, RGB image or a rejection reason out."""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aig.manifests.errors import AigError

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
    # The RGB image holds exactly the file's own pixels at full size (8-bit RGB JPEG or PNG, no EXIF rotation,
    # no DCT-domain downscale): storing the input's bytes would give the same pixels as encoding the image.
    pristine: bool = False


# zlib level for stored PNGs, chosen by measurement (README: level 1 is ~4x faster than 6 for ~6% more bytes).
PNG_LEVEL = 1
ORIENTATION = 0x0112  # EXIF tag
TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height
ROTATED_OR_FLIPPED = (2, 3, 4, 5, 6, 7, 8)  # orientations that move pixels


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


def decode_image(data: bytes, limits: DecodeLimits,
                 reduce_to: Callable[[int, int], tuple[int, int] | None] | None = None) -> tuple[Image.Image, SourceInfo]:
    """Validate and decode to an RGB image with EXIF orientation applied; raise Rejected otherwise.

    reduce_to(width, height) -> the smallest (width, height) the caller needs, or None: a JPEG is then
    decoded in the DCT domain at 1/2, 1/4 or 1/8 scale when that still gives at least that size (every
    coefficient is still decoded, so truncation and corruption are caught as before)."""
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
            orientation = img.getexif().get(ORIENTATION, 1) if fmt in ("JPEG", "PNG", "WEBP", "TIFF") else 1
            ow, oh = (h, w) if orientation in TRANSPOSED else (w, h)
            drafted = False
            if fmt == "JPEG" and reduce_to is not None and min(ow, oh) >= limits.min_size:
                need = reduce_to(ow, oh)
                if need is not None:
                    need = (need[1], need[0]) if orientation in TRANSPOSED else need
                    drafted = img.draft(mode if mode in ("RGB", "L") else None, need) is not None and img.size != (w, h)
            img.load()
            if orientation in ROTATED_OR_FLIPPED:  # otherwise Pillow's exif_transpose would only copy the image
                img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
    except Image.DecompressionBombError as e:
        raise Rejected(TOO_LARGE, str(e)) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        msg = str(e)
        reason = TRUNCATED if "truncat" in msg.lower() or isinstance(e, EOFError) else DECODE_ERROR
        raise Rejected(reason, f"{fmt}: {msg}") from None
    if min(ow, oh) < limits.min_size:
        raise Rejected(TOO_SMALL, f"{ow}x{oh} is below the minimum side of {limits.min_size} px")
    pristine = (mode == "RGB" and orientation in (0, 1) and not drafted
                and (fmt == "JPEG" or fmt == "PNG" and data[24:26] == b"\x08\x02"))  # PNG IHDR: 8-bit truecolour
    return rgb, SourceInfo(fmt, mode, ow, oh, quality, pristine)


def reduce_target(policy: str, size: int, width: int, height: int) -> tuple[int, int] | None:
    """The smallest decoded size `canonicalize(policy, size)` needs from a width x height image, or None if
    it needs the full image (no downscale)."""
    if policy == "cap" and max(width, height) > size:
        scale = size / max(width, height)
    elif policy == "center-crop" and min(width, height) > size:
        scale = size / min(width, height)
    else:
        return None
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def kept_input(src: SourceInfo, image_format: str) -> str | None:
    """File extension under which the input's own bytes can be stored in place of `image_format`, or None.

    Only for an image that canonicalisation left as decoded: a JPEG keeps its own compression (re-encoding
    it could only lose), a PNG is kept when PNG is the stored format anyway."""
    if not src.pristine:
        return None
    if src.format == "JPEG":
        return "jpg"
    return "png" if src.format == "PNG" and image_format == "png" else None


JPEG_GRID = 16  # a JPEG's block grid repeats every 8 px (16 px with 4:2:0 chroma): crops keep it in phase


def center_box(width: int, height: int, w: int, h: int, align: int = JPEG_GRID) -> tuple[int, int, int, int]:
    """A w x h box (left, top, right, bottom) near the centre, its offsets multiples of `align`."""
    left, top = (width - w) // 2 // align * align, (height - h) // 2 // align * align
    return left, top, left + w, top + h


def canonicalize(img: Image.Image, policy: str, size: int) -> Image.Image:
    """native: native pixels, centre-cropped to at most size x size (never resized); cap: longest side <= size
    (downscale only); center-crop: central square resized to size."""
    if policy == "native":
        if max(img.size) <= size:
            return img
        return img.crop(center_box(img.width, img.height, min(img.width, size), min(img.height, size)))
    if policy == "cap":
        longest = max(img.size)
        if longest <= size:
            return img
        scale = size / longest
        new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        return img.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if policy == "center-crop":
        side = min(img.size)
        if img.size == (size, size):
            return img
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
        img.save(buf, format="PNG", compress_level=PNG_LEVEL)
        return buf.getvalue(), "png"
    if image_format == "jpeg":
        img.save(buf, format="JPEG", quality=jpeg_quality, subsampling=0 if jpeg_quality >= 90 else 2)
        return buf.getvalue(), "jpg"
    raise ValueError(f"unknown image format {image_format!r}")
