"""Test helper: plant a folder of good and bad image inputs, with the outcome the ingest stage should give.

Plain functions, no tests here. Only Pillow, numpy and the standard library are used.

    expected, sizes = make_corpus_with_sizes(tmp_path)
    # expected: {"good/rgb.jpg": "ok", "bad/notes.txt": "not_an_image", ...}
    # sizes:    {"good/rgb.jpg": (96, 72), ...}  (width, height after EXIF orientation, "ok" files only)

The rejection reasons match `aig.pipeline.decode` (empty_file, not_an_image, unsupported_format, truncated,
decode_error, animated, too_small, too_large) plus `duplicate`. The corpus assumes the test settings
min_size=32 and max_pixels=50_000_000 (the too_large files are also above Pillow's default limit).

Every tricky case (truncated, decode_error, not_an_image) is checked against Pillow while it is
generated, so a Pillow upgrade that changes behaviour fails loudly here instead of silently
producing a wrong expectation. Run `python tests/corpus.py` to print what Pillow reports for each file.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image, ImageChops, ImageFile

GOOD = "ok"

from aig.pipeline.decode import (  # noqa: E402  (the reasons the ingest stage records)
    ANIMATED, DECODE_ERROR, EMPTY_FILE, NOT_AN_IMAGE, TOO_LARGE, TOO_SMALL, TRUNCATED, UNSUPPORTED_FORMAT,
)

DUPLICATE = "duplicate"
MISSING = "missing"
READ_ERROR = "read_error"
NO_IMAGE_MEMBER = "no_image_member"
UNREADABLE_SHARD = "unreadable_shard"
DUPLICATE_KEY = "duplicate_key"
UNDECODABLE_NAME = "undecodable_name"
UNREADABLE_LIST = "unreadable_list"

REASONS = (
    GOOD,
    EMPTY_FILE,
    NOT_AN_IMAGE,
    UNSUPPORTED_FORMAT,
    TRUNCATED,
    DECODE_ERROR,
    ANIMATED,
    TOO_SMALL,
    TOO_LARGE,
    DUPLICATE,
    MISSING,
    READ_ERROR,
    NO_IMAGE_MEMBER,
    UNREADABLE_SHARD,
    DUPLICATE_KEY,
    UNDECODABLE_NAME,
    UNREADABLE_LIST,
)

TEST_MIN_SIZE = 32
TEST_MAX_PIXELS = 50_000_000

# Why each planted file gets its outcome (docs/bad-inputs.md is generated from this: `python tests/corpus.py --markdown`).
WHY = {
    "good/rgb.jpg": "baseline JPEG",
    "good/rgb.png": "baseline PNG",
    "good/lossy.webp": "baseline lossy WebP",
    "good/rgb.tiff": "LZW TIFF: allowed format",
    "good/rgb.bmp": "BMP: allowed format",
    "good/still.gif": "a single-frame GIF is a still image",
    "good/orientation6.jpg": "EXIF orientation is applied: stored 120x80, kept as 80x120",
    "good/orientation9.jpg": "an invalid EXIF orientation (9) is ignored, not an error",
    "good/trailing_garbage.jpg": "bytes after the JPEG end marker (a zip appended) are ignored by the decoder",
    "modes/palette_transparent.png": "palette + transparency: composited on white",
    "modes/rgba.png": "alpha: composited on white",
    "modes/la.png": "grey + alpha: composited on white, then RGB",
    "modes/grey.jpg": "greyscale: converted to RGB",
    "modes/bilevel.png": "1-bit: converted to RGB",
    "modes/cmyk.jpg": "CMYK JPEG: converted to RGB",
    "modes/cmyk.tiff": "CMYK TIFF: converted to RGB",
    "modes/grey16.png": "16-bit grey PNG: scaled to 8 bits (/257)",
    "modes/grey16.tiff": "16-bit grey TIFF: scaled to 8 bits (/257)",
    "modes/rgb16.png": "48-bit RGB PNG: Pillow reads it as 8-bit RGB",
    "names/UPPER.JPG": "upper-case extension",
    "names/été photo.jpg": "space and non-ASCII letters in the name",
    "names/new\nline.jpg": "a newline in the file name: the path is stored as is",
    "names/caf\\xe9.jpg": "a name that is not valid UTF-8 (Latin-1 bytes): recorded with \\x escapes; "
                           "the other files are ingested",
    "names/really_png.jpg": "wrong extension (PNG bytes): the content decides",
    "names/really_jpeg.png": "wrong extension (JPEG bytes): the content decides",
    "names/really_webp.gif": "wrong extension (WebP bytes): the content decides",
    "bad/empty.jpg": "0 bytes",
    "bad/notes.txt": "text",
    "bad/noise.bin": "random bytes",
    "bad/fake.jpg": "an HTML error page saved as .jpg",
    "bad/vector.svg": "SVG is text, not a raster format Pillow reads",
    "bad/icon.ico": "ICO: a format outside the allow-list is never decoded",
    "bad/portable.ppm": "PPM: outside the allow-list",
    "bad/image.tga": "TGA: outside the allow-list",
    "bad/truncated.jpg": "JPEG cut at 60%",
    "bad/truncated.png": "PNG cut at 60%",
    "bad/truncated.webp": "WebP cut at 60%: fewer bytes than its RIFF header states",
    "bad/corrupt.jpg": "a run of 0xFF in the entropy-coded data ends in a bogus marker",
    "flips/scan_bitflip.jpg": "one flipped bit in the entropy-coded data: JPEG has no checksum, "
                              "the image decodes with local damage and is kept",
    "flips/table_bitflip.jpg": "a flipped byte in the Huffman table: the data stream no longer decodes",
    "flips/idat_bitflip.png": "one flipped bit in the compressed data: zlib/CRC checks fail",
    "flips/ihdr_bitflip.png": "one flipped bit in the header: its CRC fails, the PNG signature stays",
    "flips/zero_height.png": "a header that says 0 rows",
    "flips/data_bitflip.webp": "one flipped bit in the VP8 data: no checksum, decodes with local damage",
    "flips/header_bitflip.webp": "one flipped bit in the VP8 frame header: the decoder fails",
    "bad/animated.gif": "3 frames: a frame of an animation is not a photograph",
    "bad/animated.webp": "3 frames",
    "bad/animated.png": "APNG, 3 frames",
    "bad/tiny.png": "20x20, below --min-size",
    "bad/one_by_one.png": "1x1",
    "bad/strip.png": "4000x2: the short side is below --min-size",
    "bad/bomb.png": "20000x20000 1-bit PNG in ~60 KB: rejected from the header, never decoded",
    "bad/big.png": "9000x9000 = 81 Mpx: over --max-pixels (50 Mpx here)",
    "bad/bomb.jpg": "a 4 KB JPEG whose header says 60000x60000: rejected before decoding",
    "bad/bomb.gif": "a tiny GIF whose header says 65535x65535: rejected before decoding",
    "more/copy of rgb.png": "byte-identical to good/rgb.png, which sorts first and is kept",
    "links/dangling.jpg": "a symlink to a file that does not exist",
    "links/loop.jpg": "a symlink to itself (ELOOP)",
}


class CorpusError(RuntimeError):
    """Pillow did not behave the way a planted case needs (e.g. after a Pillow upgrade)."""


# --------------------------------------------------------------------------------------------
# Pixel content
# --------------------------------------------------------------------------------------------


def _natural(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Float array (height, width, 3) in [0, 1]: smooth gradients and waves plus a little noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x /= max(width - 1, 1)
    y /= max(height - 1, 1)
    channels = []
    for _ in range(3):
        gx, gy = rng.uniform(-0.6, 0.6, 2)
        fx, fy = rng.uniform(1.0, 7.0, 2)
        px, py = rng.uniform(0, 2 * np.pi, 2)
        amp = rng.uniform(0.05, 0.2)
        c = 0.5 + gx * (x - 0.5) + gy * (y - 0.5) + amp * np.sin(fx * x * 2 * np.pi + px) * np.cos(fy * y * np.pi + py)
        channels.append(c)
    a = np.stack(channels, axis=-1) + rng.normal(0.0, 0.03, (height, width, 3))
    return np.clip(a, 0.0, 1.0)


def _rgb(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    return Image.fromarray(np.rint(_natural(rng, width, height) * 255).astype(np.uint8))


def _encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_raw(width: int, height: int, bit_depth: int, color_type: int, raw_rows: bytes, level: int = 6) -> bytes:
    """A complete, valid PNG from already-filtered scanlines (each row starts with its filter byte)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw_rows, level))
        + _png_chunk(b"IEND", b"")
    )


def _png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of width x height: all black with a few white bands; tiny on disk.

    Written with zlib directly (Pillow would need width*height bytes of memory to build it)."""
    row_bytes = (width + 7) // 8
    black = b"\x00" * (row_bytes + 1)  # filter byte 0 + pixels
    white = b"\x00" + b"\xff" * row_bytes
    band = max(1, height // 16)
    comp = zlib.compressobj(9)
    parts = []
    for y0 in range(0, height, band):
        row = white if (y0 // band) % 4 == 1 else black
        parts.append(comp.compress(row * min(band, height - y0)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------------------------
# Checks against Pillow (the ground truth for the planted expectations)
# --------------------------------------------------------------------------------------------


def _load_error(data: bytes) -> BaseException | None:
    """Open and fully decode with Pillow's strict default; return the exception raised by load()."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise CorpusError("ImageFile.LOAD_TRUNCATED_IMAGES is True; the corpus needs Pillow's default (False)")
    img = Image.open(io.BytesIO(data))  # must succeed: the header is intact
    try:
        img.load()
    except Exception as e:  # noqa: BLE001 - we want to see whatever Pillow raises
        return e
    return None


def _is_truncation(e: BaseException) -> bool:
    return isinstance(e, EOFError) or "truncat" in str(e).lower()


def _identifies(data: bytes) -> bool:
    try:
        Image.open(io.BytesIO(data))
    except Exception:  # noqa: BLE001
        return False
    return True


def _truncate(data: bytes, what: str) -> bytes:
    cut = data[: int(len(data) * 0.6)]
    err = _load_error(cut)
    if err is None or not _is_truncation(err):
        raise CorpusError(f"{what} cut to 60% did not fail as truncated on load(): {err!r}")
    return cut


def _flip(data: bytes, pos: int, mask: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= mask
    return bytes(b)


def _flipped(data: bytes, pos: int, mask: int, want_error: bool) -> bytes:
    """data with byte `pos` XOR `mask`; checked: decoding fails (not as truncation) iff want_error."""
    bad = _flip(data, pos, mask)
    try:
        err = _load_error(bad)
    except Exception as e:  # noqa: BLE001 - the header no longer parses
        err = e
    if want_error != (err is not None) or (err is not None and _is_truncation(err)):
        raise CorpusError(f"flipping byte {pos} with {mask:#x}: Pillow gave {err!r}, wanted an error: {want_error}")
    return bad


def _corrupt_jpeg(data: bytes, rng: np.random.Generator) -> bytes:
    """Overwrite the middle tenth of a JPEG with garbage so the header parses but decoding raises.

    libjpeg shrugs off most random garbage inside the entropy-coded data (it only warns), so the
    garbage is a run of 0xFF bytes: it ends in a bogus marker, which libjpeg treats as a fatal
    error ("broken data stream"). Each candidate is verified; random garbage is tried as a fallback."""
    mid, n = len(data) // 2, max(64, len(data) // 10)
    candidates = [b"\xff" * n]
    candidates += [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for _ in range(20)]
    for garbage in candidates:
        bad = data[:mid] + garbage + data[mid + n :]
        err = _load_error(bad)
        if err is not None and not _is_truncation(err):
            return bad
    raise CorpusError("could not make a JPEG whose decoding raises a non-truncation error")


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------


def make_corpus_with_sizes(root: pathlib.Path, seed: int = 0) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    """Write the corpus under root; return ({relative_posix_path: expected}, {path: (w, h)} for "ok" files).

    The sizes are width x height after applying EXIF orientation (what the ingest must output
    under the "native" policy)."""
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {}
    expected: dict[str, str] = {}
    sizes: dict[str, tuple[int, int]] = {}

    def put(rel: str, data: bytes, outcome: str, size: tuple[int, int] | None = None) -> None:
        assert rel not in files, rel
        files[rel] = data
        expected[rel] = outcome
        if outcome == GOOD:
            assert size is not None, rel
            sizes[rel] = size

    def dims() -> tuple[int, int]:
        return int(rng.integers(64, 129)), int(rng.integers(64, 129))

    # ---- good: one of each allowed format --------------------------------------------------
    w, h = dims()
    put("good/rgb.jpg", _encode(_rgb(rng, w, h), "JPEG", quality=90), GOOD, (w, h))
    w, h = dims()
    put("good/rgb.png", _encode(_rgb(rng, w, h), "PNG"), GOOD, (w, h))
    w, h = dims()
    put("good/lossy.webp", _encode(_rgb(rng, w, h), "WEBP", quality=80), GOOD, (w, h))
    w, h = dims()
    put("good/rgb.tiff", _encode(_rgb(rng, w, h), "TIFF", compression="tiff_lzw"), GOOD, (w, h))
    w, h = dims()
    put("good/rgb.bmp", _encode(_rgb(rng, w, h), "BMP"), GOOD, (w, h))
    w, h = dims()
    put("good/still.gif", _encode(_rgb(rng, w, h).quantize(colors=128), "GIF"), GOOD, (w, h))

    # ---- good: EXIF orientation 6 (stored 120x80, displayed 80x120) ------------------------
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    put("good/orientation6.jpg", _encode(_rgb(rng, 120, 80), "JPEG", quality=90, exif=exif), GOOD, (80, 120))
    exif9 = Image.Exif()
    exif9[0x0112] = 9  # not a valid orientation (1..8)
    put("good/orientation9.jpg", _encode(_rgb(rng, 120, 80), "JPEG", quality=90, exif=exif9), GOOD, (120, 80))
    w, h = dims()
    put("good/trailing_garbage.jpg", _encode(_rgb(rng, w, h), "JPEG", quality=90) + b"PK\x03\x04" + bytes(200),
        GOOD, (w, h))

    # ---- good: unusual modes ------------------------------------------------------------------
    w, h = dims()
    pal = _rgb(rng, w, h).quantize(colors=64)
    pal.paste(63, (0, 0, w // 3, h // 3))  # a transparent corner (palette index 63 is transparent)
    put("modes/palette_transparent.png", _encode(pal, "PNG", transparency=63), GOOD, (w, h))

    w, h = dims()
    rgba = _rgb(rng, w, h)
    alpha = Image.fromarray(np.rint(_natural(rng, w, h)[:, :, 0] * 255).astype(np.uint8))
    rgba.putalpha(alpha)
    put("modes/rgba.png", _encode(rgba, "PNG"), GOOD, (w, h))

    w, h = dims()
    la = Image.merge("LA", (_rgb(rng, w, h).convert("L"), _rgb(rng, w, h).convert("L")))
    put("modes/la.png", _encode(la, "PNG"), GOOD, (w, h))

    w, h = dims()
    put("modes/grey.jpg", _encode(_rgb(rng, w, h).convert("L"), "JPEG", quality=90), GOOD, (w, h))

    w, h = dims()
    put("modes/bilevel.png", _encode(_rgb(rng, w, h).convert("L").convert("1"), "PNG"), GOOD, (w, h))

    w, h = dims()
    put("modes/cmyk.jpg", _encode(_rgb(rng, w, h).convert("CMYK"), "JPEG", quality=90), GOOD, (w, h))
    w, h = dims()
    put("modes/cmyk.tiff", _encode(_rgb(rng, w, h).convert("CMYK"), "TIFF"), GOOD, (w, h))

    w, h = dims()
    g = _natural(rng, w, h)[:, :, 0]
    g = (g - g.min()) / (g.max() - g.min())  # stretch to use the full 0..65535 range
    g16 = np.rint(g * 65535).astype(np.uint16)
    put("modes/grey16.png", _encode(Image.fromarray(g16), "PNG"), GOOD, (w, h))
    put("modes/grey16.tiff", _encode(Image.fromarray(g16[::-1].copy()), "TIFF"), GOOD, (w, h))

    # 16-bit RGB: Pillow has no 48-bit RGB mode to write from, so the PNG is written with zlib
    # (Pillow reads it back as 8-bit "RGB").
    w, h = dims()
    c16 = np.rint(_natural(rng, w, h) * 65535).astype(">u2")
    rows = b"".join(b"\x00" + c16[y].tobytes() for y in range(h))
    put("modes/rgb16.png", _png_raw(w, h, 16, 2, rows), GOOD, (w, h))

    # ---- good: awkward names ------------------------------------------------------------------
    w, h = dims()
    put("names/UPPER.JPG", _encode(_rgb(rng, w, h), "JPEG", quality=88), GOOD, (w, h))
    w, h = dims()
    put("names/été photo.jpg", _encode(_rgb(rng, w, h), "JPEG", quality=87), GOOD, (w, h))
    w, h = dims()
    put("names/really_png.jpg", _encode(_rgb(rng, w, h), "PNG"), GOOD, (w, h))  # content decides
    w, h = dims()
    put("names/really_jpeg.png", _encode(_rgb(rng, w, h), "JPEG", quality=85), GOOD, (w, h))
    w, h = dims()
    put("names/really_webp.gif", _encode(_rgb(rng, w, h), "WEBP", quality=80), GOOD, (w, h))
    w, h = dims()
    put("names/new\nline.jpg", _encode(_rgb(rng, w, h), "JPEG", quality=86), GOOD, (w, h))

    # ---- bad ---------------------------------------------------------------------------------
    put("bad/empty.jpg", b"", EMPTY_FILE)

    put("bad/notes.txt", f"shopping list (seed {seed})\n- eggs\n- flour\n".encode(), NOT_AN_IMAGE)
    noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    while _identifies(noise):  # random bytes could, in principle, pass some plugin's header check
        noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    put("bad/noise.bin", noise, NOT_AN_IMAGE)
    html = f"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1><!-- {seed} --></body></html>\n"
    put("bad/fake.jpg", html.encode(), NOT_AN_IMAGE)
    for rel in ("bad/notes.txt", "bad/fake.jpg"):
        if _identifies(files[rel]):
            raise CorpusError(f"Pillow identified {rel} as an image")

    put("bad/vector.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" '
        b'height="64"/></svg>\n', NOT_AN_IMAGE)
    if _identifies(files["bad/vector.svg"]):
        raise CorpusError("Pillow identified bad/vector.svg as an image")
    put("bad/image.tga", _encode(_rgb(rng, 64, 64), "TGA"), UNSUPPORTED_FORMAT)
    put("bad/icon.ico", _encode(_rgb(rng, 64, 64), "ICO", sizes=[(64, 64)]), UNSUPPORTED_FORMAT)
    put("bad/portable.ppm", _encode(_rgb(rng, 64, 64), "PPM"), UNSUPPORTED_FORMAT)

    put("bad/truncated.jpg", _truncate(_encode(_rgb(rng, 256, 192), "JPEG", quality=92), "JPEG"), TRUNCATED)
    put("bad/truncated.png", _truncate(_encode(_rgb(rng, 256, 192), "PNG"), "PNG"), TRUNCATED)

    webp = _encode(_rgb(rng, 256, 192), "WEBP", quality=85)
    cut = webp[: int(len(webp) * 0.6)]
    if _identifies(cut) and _load_error(cut) is None:
        raise CorpusError("a WebP cut to 60% still decodes")
    put("bad/truncated.webp", cut, TRUNCATED)

    # ---- bit flips: JPEG and WebP carry no checksum over their data, PNG does ----------------------
    jpg = _encode(_rgb(rng, 128, 96), "JPEG", quality=90)
    put("flips/scan_bitflip.jpg", _flipped(jpg, len(jpg) // 2, 0x10, want_error=False), GOOD, (128, 96))
    dht = jpg.find(b"\xff\xc4")
    put("flips/table_bitflip.jpg", _flipped(jpg, dht + 5, 0xFF, want_error=True), DECODE_ERROR)
    png = _encode(_rgb(rng, 128, 96), "PNG")
    put("flips/idat_bitflip.png", _flipped(png, png.find(b"IDAT") + 50, 0x10, want_error=True), DECODE_ERROR)
    ihdr = _flip(png, 18, 0x10)
    if _identifies(ihdr):
        raise CorpusError("Pillow opened a PNG whose IHDR CRC is wrong")
    put("flips/ihdr_bitflip.png", ihdr, DECODE_ERROR)
    zero = png[:16] + struct.pack(">II", 128, 0) + png[24:]
    if _identifies(zero):
        raise CorpusError("Pillow opened a PNG of height 0")
    put("flips/zero_height.png", zero, DECODE_ERROR)
    webp = _encode(_rgb(rng, 128, 96), "WEBP", quality=80)
    put("flips/data_bitflip.webp", _flipped(webp, len(webp) // 2, 0x10, want_error=False), GOOD, (128, 96))
    put("flips/header_bitflip.webp", _flipped(webp, 40, 0x10, want_error=True), DECODE_ERROR)

    put("bad/corrupt.jpg", _corrupt_jpeg(_encode(_rgb(rng, 256, 192), "JPEG", quality=92), rng), DECODE_ERROR)

    frames = [_rgb(rng, 80, 64) for _ in range(3)]
    gif = [f.quantize(colors=64) for f in frames]
    put("bad/animated.gif", _encode(gif[0], "GIF", save_all=True, append_images=gif[1:], duration=100, loop=0), ANIMATED)
    frames = [_rgb(rng, 80, 64) for _ in range(3)]
    webp = _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0, quality=80)
    put("bad/animated.webp", webp, ANIMATED)
    frames = [_rgb(rng, 80, 64) for _ in range(3)]
    put("bad/animated.png", _encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100),
        ANIMATED)

    put("bad/tiny.png", _encode(_rgb(rng, 20, 20), "PNG"), TOO_SMALL)
    put("bad/one_by_one.png", _encode(_rgb(rng, 1, 1), "PNG"), TOO_SMALL)
    put("bad/strip.png", _encode(_rgb(rng, 4000, 2), "PNG"), TOO_SMALL)

    put("bad/bomb.png", _png_bomb(20000, 20000), TOO_LARGE)  # 400 Mpx: Pillow's own bomb check fires at open
    put("bad/big.png", _png_bomb(9000, 9000), TOO_LARGE)  # 81 Mpx: over 50 Mpx, under Pillow's default limit
    jpg = bytearray(_encode(_rgb(rng, 64, 48), "JPEG", quality=80))
    struct.pack_into(">HH", jpg, jpg.find(b"\xff\xc0") + 5, 60000, 60000)  # SOF0: height, width
    put("bad/bomb.jpg", bytes(jpg), TOO_LARGE)
    gif = bytearray(_encode(_rgb(rng, 64, 48).quantize(colors=32), "GIF"))
    struct.pack_into("<HH", gif, 6, 65535, 65535)  # logical screen
    struct.pack_into("<HH", gif, gif.find(b"\x2c", 13) + 5, 65535, 65535)  # image descriptor
    put("bad/bomb.gif", bytes(gif), TOO_LARGE)

    # ---- duplicate: byte-identical copy of a good file in another folder ----------------------
    original, copy = "good/rgb.png", "more/copy of rgb.png"
    files[copy] = files[original]
    first, later = sorted([original, copy])
    expected[first], expected[later] = GOOD, DUPLICATE
    sizes[first] = sizes.get(original) or sizes[copy]
    sizes.pop(later, None)

    # Only the planted pair may share bytes (the ingest may deduplicate by content).
    seen: dict[str, str] = {}
    for rel in sorted(files):
        digest = hashlib.sha256(files[rel]).hexdigest()
        if digest in seen and {seen[digest], rel} != {first, later}:
            raise CorpusError(f"{rel} is byte-identical to {seen[digest]}")
        seen[digest] = rel

    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "links").mkdir()
    (root / "links" / "dangling.jpg").symlink_to("no-such-file.jpg")
    (root / "links" / "loop.jpg").symlink_to("loop.jpg")
    expected["links/dangling.jpg"] = expected["links/loop.jpg"] = MISSING
    files["links/dangling.jpg"] = files["links/loop.jpg"] = b""
    # a Latin-1 file name (not valid UTF-8): planted through bytes; its input path shows \xe9
    with open(os.path.join(os.fsencode(root / "names"), b"caf\xe9.jpg"), "wb") as f:
        f.write(_encode(_rgb(rng, 64, 48), "JPEG", quality=84))
    expected["names/caf\\xe9.jpg"], files["names/caf\\xe9.jpg"] = UNDECODABLE_NAME, b""
    assert set(expected) == set(files) == set(WHY) and all(v in REASONS for v in expected.values())
    assert set(sizes) == {k for k, v in expected.items() if v == GOOD}
    return expected, sizes


def make_corpus(root: pathlib.Path, *, seed: int = 0) -> dict[str, str]:
    """Write files under root (some in sub-folders); return {relative_posix_path: expected}.

    expected is "ok" (GOOD) or a rejection reason."""
    return make_corpus_with_sizes(root, seed=seed)[0]


def expected_sizes(root: pathlib.Path, *, seed: int = 0) -> dict[str, tuple[int, int]]:
    """Write the corpus under root and return {relative_posix_path: (width, height)} for the "ok" files."""
    return make_corpus_with_sizes(root, seed=seed)[1]


# --------------------------------------------------------------------------------------------
# Paths in list inputs, and members of input shards
# --------------------------------------------------------------------------------------------

LIST_WHY = {
    "link to a file": ("ok", "a symlink is followed; the input is its target's resolved path"),
    "dangling symlink": (MISSING, "the list names a symlink to nothing"),
    "symlink loop": (MISSING, "a symlink to itself (ELOOP); reported, enumeration goes on"),
    "dot-dot path": ("ok", "`sub/../x.jpg` is resolved against the list's folder"),
    "path outside the list's folder": ("ok", "`../elsewhere/x.jpg`: lists may name files anywhere"),
    "spaces and unicode": ("ok", "`photos/mon été 2.jpg`"),
    "newline in the name": ("ok", "a quoted CSV field may hold a newline; the path is kept as is"),
    "folder instead of a file": (MISSING, "not a file"),
    "no such file": (MISSING, "a path that does not exist"),
    "empty path": (MISSING, "an empty path cell"),
    "listed twice": ("ok", "the same path twice is one input"),
}

BAD_LIST_WHY = {
    "long-caption.csv": ("ok", "a 200,000-character caption (over Python's default CSV field limit of 131,072): kept whole"),
    "bom.csv": ("ok", "a UTF-8 byte-order mark before the header: not part of the column name"),
    "binary-path.parquet": ("ok", "a Parquet list whose path column is binary: the bytes are the file name"),
    "latin1.csv": (UNREADABLE_LIST, "a Latin-1 CSV: not UTF-8; one failure row for the list, the other inputs go on"),
    "corrupt.parquet": (UNREADABLE_LIST, "a damaged Parquet list: one failure row for the list"),
    "int-path.parquet": (UNREADABLE_LIST, "a Parquet list whose path column holds integers"),
    "s3 row": (READ_ERROR, "a row naming `s3://...` without credentials: that row's failure"),
}

SHARD_WHY = {
    "../escape.png": ("ok", "traversal member name: read by offset from the tar, never extracted; "
                            "nothing is written outside the dataset"),
    "/abs/olute.png": ("ok", "absolute member name: read by offset, never extracted"),
    "deep/../../up.png": ("ok", "traversal through a folder: read by offset, never extracted"),
    "sym.jpg": (NO_IMAGE_MEMBER, "a symlink member (to /etc/passwd) is never followed nor read"),
    "hard.jpg": (NO_IMAGE_MEMBER, "a hard-link member is never followed nor read"),
    "meta": (NO_IMAGE_MEMBER, "a sample with only a .json member"),
    "cut.jpg": (TRUNCATED, "the last member of a shard cut short: its data runs past the end of the tar"),
    "(end)": (UNREADABLE_SHARD, "the shard cut short: members before the cut are kept, this row says where it ends"),
    "not-a-tar": (UNREADABLE_SHARD, "a .tar file that is not a tar"),
    "x.png, x.png": (DUPLICATE_KEY, "a member name twice (other bytes): the first is ingested, the second is a "
                                    "failure named `SHARD#x.png@OFFSET` (its header's offset)"),
    "z.jpg, z.png": (DUPLICATE_KEY, "two images under one key: the first in the tar is ingested, the other fails"),
    "n\\xe9.png": ("ok", "a member name that is not valid UTF-8: read by offset, its input path shows \\x escapes"),
}


def make_list_corpus(root: pathlib.Path, seed: int = 3) -> tuple[pathlib.Path, dict[str, str]]:
    """A CSV list (root/list.csv) naming awkward paths; returns it and {input_path: expected outcome}."""
    import csv

    root = pathlib.Path(root)
    imgs = make_images(root / "photos", 6, size=(64, 64), seed=seed)
    (root / "elsewhere").mkdir()
    outside = (root / "elsewhere" / "x.jpg")
    outside.write_bytes(make_images(root / "tmp-outside", 1, size=(64, 64), seed=seed + 1)[0].read_bytes())
    odd = root / "photos" / "mon été 2.jpg"
    imgs[1].rename(odd)
    newline = root / "photos" / "new\nline.jpg"
    imgs[2].rename(newline)
    links = root / "links"
    links.mkdir()
    (links / "to-file.jpg").symlink_to(imgs[0])
    (links / "dangling.jpg").symlink_to(root / "no-such.jpg")
    (links / "loop.jpg").symlink_to(links / "loop.jpg")
    rows = [
        ("links/to-file.jpg", str(imgs[0].resolve()), "ok"),
        ("links/dangling.jpg", str((links / "dangling.jpg").absolute()), MISSING),
        ("links/loop.jpg", str((links / "loop.jpg").absolute()), MISSING),
        (f"photos/sub/../{imgs[3].name}", str(imgs[3].resolve()), "ok"),
        ("../list-corpus-outside/x.jpg", None, "ok"),
        ("photos/mon été 2.jpg", str(odd.resolve()), "ok"),
        ("photos/new\nline.jpg", str(newline.resolve()), "ok"),
        ("photos", str((root / "photos").resolve()), MISSING),
        ("photos/gone.jpg", str((root / "photos" / "gone.jpg").resolve()), MISSING),
        ("", str(root.resolve()), MISSING),
        (str(imgs[4]), str(imgs[4].resolve()), "ok"),
        (str(imgs[4]), str(imgs[4].resolve()), "ok"),
    ]
    # the "outside" row: a sibling folder of root, reached with ..
    sibling = root.parent / "list-corpus-outside"
    sibling.mkdir(exist_ok=True)
    (sibling / "x.jpg").write_bytes(outside.read_bytes())
    rows[4] = (rows[4][0], str((sibling / "x.jpg").resolve()), "ok")
    (root / "photos" / "sub").mkdir()
    with open(root / "list.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path"])
        w.writerows([[r[0]] for r in rows])
    return root / "list.csv", {r[1]: r[2] for r in rows}


def make_bad_lists(root: pathlib.Path, seed: int = 5) -> tuple[list[pathlib.Path], dict[str, str], dict]:
    """List files that are damaged or awkward as a whole (BAD_LIST_WHY); returns them, {input_path: expected}
    and {input_path: caption length} for the kept rows with a caption."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = pathlib.Path(root)
    imgs = make_images(root / "imgs", 3, size=(64, 64), seed=seed)
    lists = {name: root / name for name in BAD_LIST_WHY if name != "s3 row"}
    lists["long-caption.csv"].write_text(f"path,caption\nimgs/{imgs[0].name},{'a' * 200_000}\n"
                                         "s3://aig-no-such-bucket/x.png,\n")
    lists["bom.csv"].write_bytes(b"\xef\xbb\xbfpath\n" + f"imgs/{imgs[1].name}\n".encode())
    pq.write_table(pa.table({"path": [str(imgs[2]).encode()]}), lists["binary-path.parquet"])
    lists["latin1.csv"].write_bytes(f"path,caption\nimgs/{imgs[0].name},caf\xe9\n".encode("latin-1"))
    lists["corrupt.parquet"].write_bytes(b"PAR1" + b"\0" * 64)
    pq.write_table(pa.table({"path": [1, 2]}), lists["int-path.parquet"])
    expected = {str(imgs[0].resolve()): "ok", str(imgs[1].resolve()): "ok", str(imgs[2].resolve()): "ok",
                "s3://aig-no-such-bucket/x.png": READ_ERROR}
    expected.update({str(lists[n].resolve()): UNREADABLE_LIST for n in ("latin1.csv", "corrupt.parquet",
                                                                        "int-path.parquet")})
    return list(lists.values()), expected, {str(imgs[0].resolve()): 200_000}


def make_shard_corpus(root: pathlib.Path, seed: int = 4) -> tuple[list[pathlib.Path], dict[str, str]]:
    """Input shards with hostile member names and damage; returns the tars and {input_path: expected}."""
    import json
    import tarfile

    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    imgs = [p.read_bytes() for p in make_images(root / "src", 5, size=(64, 64), fmt="PNG", seed=seed)]

    def add(tf, name, data=b"", kind=tarfile.REGTYPE, link=""):
        info = tarfile.TarInfo(name)
        info.size, info.type, info.linkname = len(data), kind, link
        tf.addfile(info, io.BytesIO(data) if data else None)

    hostile = root / "hostile.tar"
    with tarfile.open(hostile, "w", format=tarfile.GNU_FORMAT) as tf:
        add(tf, "../escape.png", imgs[0])
        add(tf, "/abs/olute.png", imgs[1])
        add(tf, "deep/../../up.png", imgs[2])
        add(tf, "sym.jpg", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add(tf, "hard.jpg", kind=tarfile.LNKTYPE, link="../escape.png")
        add(tf, "meta.json", json.dumps({"no": "image"}).encode())
    cut = root / "cut.tar"
    with tarfile.open(cut, "w") as tf:
        add(tf, "whole.png", imgs[3])
        add(tf, "cut.jpg", imgs[4])
    data = cut.read_bytes()
    end = data.find(imgs[4]) + len(imgs[4]) // 2
    cut.write_bytes(data[:end])
    junk = root / "not-a-tar.tar"
    junk.write_bytes(b"this is not a tar archive\n" * 40)
    more = [p.read_bytes() for p in make_images(root / "src2", 4, size=(64, 64), fmt="PNG", seed=seed + 1)]
    jpeg = make_images(root / "src3", 1, size=(64, 64), seed=seed + 2)[0].read_bytes()
    dups = root / "dups.tar"
    with tarfile.open(dups, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tf:
        add(tf, "x.png", more[0])
        add(tf, "x.png", more[1])
        add(tf, "z.jpg", jpeg)
        add(tf, "z.png", more[2])
        add(tf, os.fsdecode(b"n\xe9.png"), more[3])
    with tarfile.open(dups) as tf:
        offsets = [m.offset for m in tf]
    h, c, d = str(hostile.resolve()), str(cut.resolve()), str(dups.resolve())
    expected = {
        f"{h}#../escape.png": "ok", f"{h}#/abs/olute.png": "ok", f"{h}#deep/../../up.png": "ok",
        f"{h}#sym": NO_IMAGE_MEMBER, f"{h}#hard": NO_IMAGE_MEMBER, f"{h}#meta": NO_IMAGE_MEMBER,
        f"{c}#whole.png": "ok", f"{c}#cut.jpg": TRUNCATED, f"{c}#(end)": UNREADABLE_SHARD,
        str(junk.resolve()): UNREADABLE_SHARD,
        f"{d}#x.png": "ok", f"{d}#x.png@{offsets[1]}": DUPLICATE_KEY,
        f"{d}#z.jpg": "ok", f"{d}#z.png@{offsets[3]}": DUPLICATE_KEY, f"{d}#n\\xe9.png": "ok",
    }
    return [hostile, cut, junk, dups], expected


def markdown_table() -> str:
    """The outcome table of every planted kind (docs/bad-inputs.md)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        expected = make_corpus(pathlib.Path(tmp) / "c")
    lines = ["| input | outcome | why |", "|---|---|---|"]
    cell = lambda t: t.replace("\n", "\\n").replace("|", "\\|")  # noqa: E731
    lines += [f"| folder: `{cell(rel)}` | {expected[rel]} | {WHY[rel]} |" for rel in sorted(expected)]
    lines += [f"| list: {name} | {out} | {why} |" for name, (out, why) in LIST_WHY.items()]
    lines += [f"| list file: `{name}` | {out} | {why} |" for name, (out, why) in BAD_LIST_WHY.items()]
    lines += [f"| shard member: `{name}` | {out} | {why} |" for name, (out, why) in SHARD_WHY.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Many distinct images, fast (benchmarks, resume tests)
# --------------------------------------------------------------------------------------------

_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tiff", "BMP": "bmp", "GIF": "gif"}


def make_images(
    root: pathlib.Path, n: int, size: tuple[int, int] = (512, 512), fmt: str = "JPEG", seed: int = 0
) -> list[pathlib.Path]:
    """Write n distinct natural-ish images of `size` (width, height) as root/img_000000.<ext>...; return the paths.

    Deterministic for a given seed. A few smooth fields (a small random array upscaled with Pillow)
    are made once; each image is a random crop of one, with a random per-channel tone curve and a
    random crop of a shared noise texture added, so only cheap C-level Pillow operations run per image
    (several hundred 512 px JPEGs per second)."""
    fmt = fmt.upper()
    if fmt not in _EXTENSIONS:
        raise ValueError(f"fmt {fmt!r} not one of {', '.join(_EXTENSIONS)}")
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    width, height = size
    rng = np.random.default_rng(seed)
    pad = max(32, min(width, height) // 2)
    fields = [
        Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).resize(
            (width + pad, height + pad), Image.Resampling.BICUBIC
        )
        for _ in range(4)
    ]
    noise = Image.fromarray(rng.integers(0, 25, (height + pad, width + pad, 3), dtype=np.uint8))
    ramp = np.arange(256, dtype=np.float64)
    params = {"JPEG": {"quality": 90}, "WEBP": {"quality": 80}, "PNG": {"compress_level": 1}}.get(fmt, {})
    seen: set[bytes] = set()
    paths = []
    for i in range(n):
        while True:
            field = fields[int(rng.integers(len(fields)))]
            fx, fy, nx, ny = (int(v) for v in rng.integers(0, pad, 4))
            img = field.crop((fx, fy, fx + width, fy + height))
            gain = rng.uniform(0.4, 0.9, 3)
            offset = rng.uniform(0.0, 1.0, 3) * (231.0 - 255.0 * gain)  # keep room for the noise (max 24)
            lut = np.rint(ramp[None, :] * gain[:, None] + offset[:, None]).astype(np.uint8).ravel()
            img = img.point(lut.tolist())
            img = ImageChops.add_modulo(img, noise.crop((nx, ny, nx + width, ny + height)))  # never wraps
            if fmt == "GIF":
                img = img.quantize(colors=256)
            data = _encode(img, fmt, **params)
            digest = hashlib.sha256(data).digest()
            if digest not in seen:
                seen.add(digest)
                break
        path = root / f"img_{i:06d}.{_EXTENSIONS[fmt]}"
        path.write_bytes(data)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Self-check: what Pillow says about each planted file
# --------------------------------------------------------------------------------------------


def _describe(path: pathlib.Path) -> str:
    if path.is_symlink() and not path.exists():
        return "broken symlink"
    if not path.exists():
        return "planted under a name that is not valid UTF-8"
    data = path.read_bytes()
    if not data:
        return "0 bytes"
    try:
        img = Image.open(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001
        return f"open raises {type(e).__name__}: {e}"
    frames = getattr(img, "n_frames", 1)
    desc = f"{img.format} {img.mode} {img.size[0]}x{img.size[1]} frames={frames}"
    if img.size[0] * img.size[1] > TEST_MAX_PIXELS:
        return desc + " (not loaded: over the pixel limit)"
    try:
        img.load()
    except Exception as e:  # noqa: BLE001
        return desc + f" | load raises {type(e).__name__}: {e}"
    desc += " | load ok"
    orientation = img.getexif().get(0x0112)  # after load: PNG's getexif() loads the image
    if orientation:
        desc += f", EXIF orientation={orientation}"
    if img.mode.startswith("I;16"):
        a = np.asarray(img)
        desc += f", values {a.min()}..{a.max()}"
    return desc


if __name__ == "__main__":
    import sys
    import tempfile
    import time

    if sys.argv[1:] == ["--markdown"]:
        print(markdown_table(), end="")
        sys.exit(0)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        expected, sizes = make_corpus_with_sizes(pathlib.Path(tmp) / "corpus", seed=0)
        took = time.perf_counter() - t0
        width = max(len(k) for k in expected)
        for rel in sorted(expected):
            path = pathlib.Path(tmp) / "corpus" / rel
            size = f" expect {sizes[rel][0]}x{sizes[rel][1]}" if rel in sizes else ""
            print(f"{rel:<{width}}  {expected[rel]:<18} {path.lstat().st_size:>8} B  {_describe(path)}{size}")
        counts: dict[str, int] = {}
        for v in expected.values():
            counts[v] = counts.get(v, 0) + 1
        print(f"\n{len(expected)} files in {took:.2f} s: {counts}")
        again = make_corpus_with_sizes(pathlib.Path(tmp) / "again", seed=0)
        same = all((pathlib.Path(tmp) / "corpus" / r).read_bytes() == (pathlib.Path(tmp) / "again" / r).read_bytes()
                   for r in expected if not r.startswith("links/"))
        print(f"deterministic for a seed: {same and again == (expected, sizes)}")

        n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
        t0 = time.perf_counter()
        paths = make_images(pathlib.Path(tmp) / "many", n)
        took = time.perf_counter() - t0
        distinct = len({hashlib.sha256(p.read_bytes()).digest() for p in paths})
        print(f"make_images: {n} x 512px JPEG in {took:.2f} s = {n / took:.0f} images/s, {distinct} distinct")
