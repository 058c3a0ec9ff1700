"""Ingest's fast paths: an input left as decoded keeps its own bytes; JPEGs are downscaled in the DCT domain."""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from conftest import run_aig, sql_rows
from aig.pipeline.decode import DecodeLimits, canonicalize, decode_image, kept_input, reduce_target

LIMITS = DecodeLimits(min_size=16, max_pixels=10**8)


def _photo(side: int, seed: int = 0) -> Image.Image:
    """Smooth colour field with a few edges: JPEG-friendly, like a photo."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((side, side), Image.BICUBIC)
    a = np.asarray(small).copy()
    a[side // 4: side // 2, side // 3: side // 2] = (200, 40, 30)
    return Image.fromarray(a)


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, **kw)
    return buf.getvalue()


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_draft_downscale_matches_full_decode_and_resize():
    data = _jpeg(_photo(512))
    for policy, size in (("center-crop", 128), ("cap", 200)):
        fast, src = decode_image(data, LIMITS, reduce_to=lambda w, h: reduce_target(policy, size, w, h))
        full, _ = decode_image(data, LIMITS)
        assert fast.size != full.size and (src.width, src.height) == (512, 512) and not src.pristine
        a = np.asarray(canonicalize(fast, policy, size), np.float32)
        b = np.asarray(canonicalize(full, policy, size), np.float32)
        assert a.shape == b.shape and np.abs(a - b).mean() < 2.0, np.abs(a - b).mean()


def test_draft_respects_exif_rotation_and_never_undershoots():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: stored 400x200, shown 200x400
    data = _jpeg(_photo(400).resize((400, 200)), exif=exif.tobytes())
    img, src = decode_image(data, LIMITS, reduce_to=lambda w, h: reduce_target("center-crop", 64, w, h))
    assert (src.width, src.height) == (200, 400) and img.width >= 64 and img.height > img.width
    assert reduce_target("center-crop", 64, 64, 100) is None and reduce_target("native", 64, 640, 480) is None


def test_kept_input_only_when_pixels_are_unchanged():
    rgb = _photo(64)
    assert kept_input(decode_image(_jpeg(rgb), LIMITS)[1], "png") == "jpg"
    assert kept_input(decode_image(_png(rgb), LIMITS)[1], "png") == "png"
    assert kept_input(decode_image(_png(rgb), LIMITS)[1], "jpeg") is None  # PNG stored as JPEG: re-encoded
    assert kept_input(decode_image(_png(rgb.convert("RGBA")), LIMITS)[1], "png") is None  # composited on white
    assert kept_input(decode_image(_jpeg(rgb.convert("L")), LIMITS)[1], "png") is None  # grey becomes RGB
    exif = Image.Exif()
    exif[0x0112] = 3
    assert kept_input(decode_image(_jpeg(rgb, exif=exif.tobytes()), LIMITS)[1], "png") is None  # rotated


def test_build_keeps_input_bytes_and_downscales_jpegs(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    inputs = {"keep.jpg": _jpeg(_photo(64, 1)), "keep.png": _png(_photo(64, 2)), "big.jpg": _jpeg(_photo(256, 3)),
              "rgba.png": _png(_photo(64, 4).convert("RGBA"))}
    for name, data in inputs.items():
        (photos / name).write_bytes(data)
    out = tmp_path / "ds"
    run_aig("build-data", "-o", out, "--input-dir", photos, "--stages", "ingest", "--policy", "center-crop",
            "--size", "64", "--executor", "local", "--split", "1,0,0")
    rows = {r["name"]: r for r in sql_rows(out, "select regexp_extract(input_path, '[^/]+$') as name, format, sha256, "
                                                "source_sha256, shard, member, width, height from samples")}
    assert set(rows) == set(inputs)
    members = {}
    for shard in {r["shard"] for r in rows.values()}:
        with tarfile.open(out / shard) as tf:
            members.update({m.name: tf.extractfile(m).read() for m in tf.getmembers()})
    for name in ("keep.jpg", "keep.png"):
        r = rows[name]
        assert members[r["member"]] == inputs[name] and r["sha256"] == r["source_sha256"]
        assert r["format"] == name.rsplit(".")[1]
    for name in ("big.jpg", "rgba.png"):  # resized / composited: encoded as PNG
        r = rows[name]
        assert r["format"] == "png" and r["sha256"] != r["source_sha256"] and (r["width"], r["height"]) == (64, 64)
    big = Image.open(io.BytesIO(members[rows["big.jpg"]["member"]]))
    ref = Image.open(io.BytesIO(inputs["big.jpg"])).convert("RGB").resize((64, 64), Image.Resampling.LANCZOS)
    assert np.abs(np.asarray(big, np.float32) - np.asarray(ref, np.float32)).mean() < 2.0
    assert "OK" in run_aig("verify", out).stdout


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_keep_input_can_be_turned_off(tmp_path, fmt):
    from aig.pipeline import ingest
    from aig.pipeline.config import IngestConfig

    path = tmp_path / "x.jpg"
    path.write_bytes(_jpeg(_photo(64)))
    row = {"input_path": str(path), "file": str(path), "offset": -1, "size": -1, "chunk": 0, "duplicate_of": None,
           "error": None, "key": "abc", "group_id": "abc", "split": "train", "caption": None, "origin": "folder",
           "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    kept = ingest.prepare(row, IngestConfig(image_format=fmt), "run-0001", max_retries=0)
    assert kept.row["format"] == "jpg" and kept.row["sha256"] == row["source_sha256"]
    fresh = ingest.prepare(row, IngestConfig(image_format=fmt, keep_input=False), "run-0001", max_retries=0)
    assert fresh.row["format"] == {"png": "png", "jpeg": "jpg"}[fmt] and fresh.row["sha256"] != row["source_sha256"]
