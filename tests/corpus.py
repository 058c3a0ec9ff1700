"""Test helper: plant a folder of good and bad image inputs, with the outcome the ingest stage should give.

Plain functions, no tests here. Only Pillow, numpy and the standard library are used.

    expected, sizes = make_corpus_with_sizes(tmp_path)
    # expected: {"good/rgb.jpg": "ok", "bad/notes.txt": "not_an_image", ...}
    # sizes:    {"good/rgb.jpg": (96, 72), ...}  (width, height after EXIF orientation, "ok" files only)

The rejection reasons match `pipeline.decode` (empty_file, not_an_image, unsupported_format, truncated,
decode_error, animated, too_small, too_large) plus `duplicate`. The corpus assumes the test settings
min_size=32 and max_pixels=50_000_000 (the too_large files are also above Pillow's default limit).

Every tricky case (truncated, decode_error, not_an_image) is checked against Pillow while it is
generated, so a Pillow upgrade that changes behaviour fails loudly here instead of silently
producing a wrong expectation. Run `python tests/corpus.py` to print what Pillow reports for each file.
"""

from __future__ import annotations

import hashlib
import io
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image, ImageChops, ImageFile

GOOD = "ok"

from pipeline.decode import (  # noqa: E402  (the reasons the ingest stage records)
    ANIMATED, DECODE_ERROR, EMPTY_FILE, NOT_AN_IMAGE, TOO_LARGE, TOO_SMALL, TRUNCATED, UNSUPPORTED_FORMAT,
)

DUPLICATE = "duplicate"

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
)

TEST_MIN_SIZE = 32
TEST_MAX_PIXELS = 50_000_000


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
    g = _natural(rng, w, h)[:, :, 0]
    g = (g - g.min()) / (g.max() - g.min())  # stretch to use the full 0..65535 range
    g16 = np.rint(g * 65535).astype(np.uint16)
    put("modes/grey16.png", _encode(Image.fromarray(g16), "PNG"), GOOD, (w, h))

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

    put("bad/icon.ico", _encode(_rgb(rng, 64, 64), "ICO", sizes=[(64, 64)]), UNSUPPORTED_FORMAT)
    put("bad/portable.ppm", _encode(_rgb(rng, 64, 64), "PPM"), UNSUPPORTED_FORMAT)

    put("bad/truncated.jpg", _truncate(_encode(_rgb(rng, 256, 192), "JPEG", quality=92), "JPEG"), TRUNCATED)
    put("bad/truncated.png", _truncate(_encode(_rgb(rng, 256, 192), "PNG"), "PNG"), TRUNCATED)

    put("bad/corrupt.jpg", _corrupt_jpeg(_encode(_rgb(rng, 256, 192), "JPEG", quality=92), rng), DECODE_ERROR)

    frames = [_rgb(rng, 80, 64) for _ in range(3)]
    gif = [f.quantize(colors=64) for f in frames]
    put("bad/animated.gif", _encode(gif[0], "GIF", save_all=True, append_images=gif[1:], duration=100, loop=0), ANIMATED)
    frames = [_rgb(rng, 80, 64) for _ in range(3)]
    webp = _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0, quality=80)
    put("bad/animated.webp", webp, ANIMATED)

    put("bad/tiny.png", _encode(_rgb(rng, 20, 20), "PNG"), TOO_SMALL)

    put("bad/bomb.png", _png_bomb(20000, 20000), TOO_LARGE)  # 400 Mpx: Pillow's own bomb check fires at open
    put("bad/big.png", _png_bomb(9000, 9000), TOO_LARGE)  # 81 Mpx: over 50 Mpx, under Pillow's default limit

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
    assert set(expected) == set(files) and all(v in REASONS for v in expected.values())
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

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        expected, sizes = make_corpus_with_sizes(pathlib.Path(tmp) / "corpus", seed=0)
        took = time.perf_counter() - t0
        width = max(len(k) for k in expected)
        for rel in sorted(expected):
            path = pathlib.Path(tmp) / "corpus" / rel
            size = f" expect {sizes[rel][0]}x{sizes[rel][1]}" if rel in sizes else ""
            print(f"{rel:<{width}}  {expected[rel]:<18} {path.stat().st_size:>8} B  {_describe(path)}{size}")
        counts: dict[str, int] = {}
        for v in expected.values():
            counts[v] = counts.get(v, 0) + 1
        print(f"\n{len(expected)} files in {took:.2f} s: {counts}")
        again = make_corpus_with_sizes(pathlib.Path(tmp) / "again", seed=0)
        same = all((pathlib.Path(tmp) / "corpus" / r).read_bytes() == (pathlib.Path(tmp) / "again" / r).read_bytes() for r in expected)
        print(f"deterministic for a seed: {same and again == (expected, sizes)}")

        n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
        t0 = time.perf_counter()
        paths = make_images(pathlib.Path(tmp) / "many", n)
        took = time.perf_counter() - t0
        distinct = len({hashlib.sha256(p.read_bytes()).digest() for p in paths})
        print(f"make_images: {n} x 512px JPEG in {took:.2f} s = {n / took:.0f} images/s, {distinct} distinct")
