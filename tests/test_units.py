"""Pure pieces: tar writing, splits, decoding policies, retries."""

from __future__ import annotations

import io
import tarfile

import pytest
from PIL import Image

from pipeline import ingest
from pipeline.config import IngestConfig, SplitConfig
from pipeline.decode import canonicalize
from pipeline.plan import assign_split
from pipeline.shards import Sample, group_into_shards, tar_bytes


def _samples(n, size=100):
    return [Sample(f"k{i:03d}", {"json": b"{}", "png": bytes([i % 256]) * size}) for i in range(n)]


def test_tar_is_deterministic_sorted_and_indexed():
    samples = _samples(5)
    a, entries = tar_bytes(samples)
    b, _ = tar_bytes(list(reversed(samples)))
    assert a == b
    with tarfile.open(fileobj=io.BytesIO(a)) as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members)
        assert [(m.offset_data, m.size) for m in members] == [(e.offset_data, e.size) for e in entries]


def test_keys_with_dots_are_refused():
    with pytest.raises(ValueError, match="without dots"):
        tar_bytes([Sample("sd-v1.5", {"png": b"x"})])


def test_shards_bounded_by_count_and_bytes():
    assert [len(g) for g in group_into_shards(_samples(10), 4, 10**9)] == [4, 4, 2]
    by_bytes = group_into_shards(_samples(10, size=1000), 100, 5000)
    assert all(sum(s.nbytes for s in g) <= 5000 for g in by_bytes) and sum(map(len, by_bytes)) == 10


def test_split_assignment_is_deterministic_and_proportional():
    cfg = SplitConfig()
    splits = [assign_split(f"src{i}", cfg) for i in range(20_000)]
    assert splits == [assign_split(f"src{i}", cfg) for i in range(20_000)]
    share = splits.count("train") / len(splits)
    assert 0.78 < share < 0.82 and 0.08 < splits.count("test") / len(splits) < 0.12
    other = [assign_split(f"src{i}", SplitConfig(seed="other")) for i in range(200)]
    assert other != splits[:200]


@pytest.mark.parametrize("policy,size,expected", [
    ("cap", 100, (100, 50)), ("cap", 300, (200, 100)), ("center-crop", 64, (64, 64)), ("native", 300, (200, 100)),
    ("native", 150, (150, 100)), ("native", 64, (64, 64)),
])
def test_canonicalize(policy, size, expected):
    assert canonicalize(Image.new("RGB", (200, 100)), policy, size).size == expected


def test_native_policy_crops_native_pixels_on_the_jpeg_grid():
    import numpy as np

    from pipeline.config import load_config

    src = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 437, 3), dtype=np.uint8))
    out = canonicalize(src, "native", 128)
    left, top = (437 - 128) // 2 // 16 * 16, (300 - 128) // 2 // 16 * 16  # centre, aligned to the 16 px JPEG MCU
    assert out.size == (128, 128) and out.tobytes() == src.crop((left, top, left + 128, top + 128)).tobytes()
    cfg = load_config(None, {})
    assert (cfg.ingest.policy, cfg.ingest.size, cfg.reconstruct.pair_format) == ("native", 2048, "auto")
    assert load_config(None, {"ingest.policy": "cap"}).ingest.size == 512


def test_aspect_matched_sizes():
    from generators.text2image import aspect_size

    assert aspect_size(640 / 427, 512 * 512, 8) == (624, 416)  # a COCO photo at SD 1.5's area
    assert aspect_size(1.0, 1024 * 1024, 16) == (1024, 1024)
    w, h = aspect_size(3 / 4, 1024 * 1024, 16)
    assert w % 16 == 0 and h % 16 == 0 and abs(w / h - 0.75) < 0.02 and abs(w * h / 1024 ** 2 - 1) < 0.03


def test_transient_read_errors_are_retried_then_recorded(monkeypatch, tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(path)
    import hashlib

    row = {"input_path": str(path), "file": str(path), "offset": -1, "size": -1, "chunk": 0, "duplicate_of": None,
           "error": None, "key": "abc", "group_id": "abc", "split": "train", "caption": None, "origin": "folder",
           "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    calls = {"n": 0}
    real_read = ingest.read_bytes

    def flaky(item):
        calls["n"] += 1
        if calls["n"] < 3:
            raise OSError("stale NFS handle")
        return real_read(item)

    monkeypatch.setattr(ingest, "read_bytes", flaky)
    assert ingest.prepare(row, IngestConfig(), "run-0001", max_retries=2).sample is not None
    calls["n"] = -10
    out = ingest.prepare(row, IngestConfig(), "run-0001", max_retries=2)
    assert out.failure["reason"] == "read_error" and out.failure["attempts"] == 3


def test_ray_executor_survives_a_dying_worker():
    from pipeline.config import RunnerConfig
    from pipeline.runner import RayExecutor

    ns: dict = {}  # functions defined here are pickled by value, so Ray workers need not import this test
    exec("import os\ndef die(code):\n    os._exit(code)\ndef neg(x):\n    return -x\n", ns)
    ex = RayExecutor(RunnerConfig(workers=2, max_retries=1))
    try:
        results = dict(ex.map(ns["neg"], [(-1,), (-2,)]))
        assert results == {0: 1, 1: 2}
        crashed = dict(ex.map(ns["die"], [(3,)]))
        assert isinstance(crashed[0], Exception)
        assert dict(ex.map(ns["neg"], [(-5,)])) == {0: 5}  # still usable afterwards
    finally:
        ex.close()


def test_autoencoder_tiny_loads_by_path_and_reconstructs(tmp_path):
    import torch
    from diffusers import AutoencoderTiny

    from generators.autoencoder import crop_to_multiple, load_autoencoder, reconstruct

    AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                    num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1)).save_pretrained(tmp_path / "taesd")
    ae = load_autoencoder(str(tmp_path / "taesd"), None, None, "cpu", torch.float32)
    assert ae.class_name == "AutoencoderTiny" and not ae.has_posterior and ae.factor == 2
    box = crop_to_multiple(33, 20, ae.factor)
    assert box == (0, 0, 32, 20)
    y = reconstruct(ae, torch.zeros(2, 3, 20, 32), [1, 2], "sample")
    assert y.shape == (2, 3, 20, 32) and y.min() >= -1 and y.max() <= 1


def test_generator_names_are_key_safe():
    from generators.naming import generator_name

    assert generator_name("stabilityai/stable-diffusion-2-1", "vae") == "stable_diffusion_2_1_vae"
    assert generator_name("/models/sd-v1.5/") == "sd_v1_5"
    assert generator_name("embedded") == "tinyvae"
