"""Pure pieces: tar writing, splits, decoding policies, retries."""

from __future__ import annotations

import io
import tarfile

import pytest
from PIL import Image

from aig.pipeline import ingest
from aig.pipeline.config import IngestConfig, SplitConfig
from aig.pipeline.decode import canonicalize
from aig.pipeline.plan import assign_split
from aig.pipeline.shards import Sample, group_into_shards, tar_bytes


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

    from aig.pipeline.config import load_config

    src = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 437, 3), dtype=np.uint8))
    out = canonicalize(src, "native", 128)
    left, top = (437 - 128) // 2 // 16 * 16, (300 - 128) // 2 // 16 * 16  # centre, aligned to the 16 px JPEG MCU
    assert out.size == (128, 128) and out.tobytes() == src.crop((left, top, left + 128, top + 128)).tobytes()
    cfg = load_config(None, {})
    assert (cfg.ingest.policy, cfg.ingest.size, cfg.reconstruct.pair_format) == ("native", 2048, "auto")
    assert load_config(None, {"ingest.policy": "cap"}).ingest.size == 512


def test_aspect_matched_sizes():
    from aig.generators.text2image import aspect_size

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
    real_read = ingest.fetch_input

    def flaky(item, download=None):
        calls["n"] += 1
        if calls["n"] < 3:
            raise OSError("stale NFS handle")
        return real_read(item, download)

    monkeypatch.setattr(ingest, "fetch_input", flaky)
    assert ingest.prepare(row, IngestConfig(), "run-0001", max_retries=2).sample is not None
    calls["n"] = -10
    out = ingest.prepare(row, IngestConfig(), "run-0001", max_retries=2)
    assert out.failure["reason"] == "read_error" and out.failure["attempts"] == 3


def test_ray_executor_survives_a_dying_worker_and_gpu_actors_overlap_chunks():
    import ray

    from aig.pipeline.config import RunnerConfig
    from aig.pipeline.runner import RayExecutor

    ns: dict = {}  # functions defined here are pickled by value, so Ray workers need not import this test
    exec("import os, threading, time\ndef die(code):\n    os._exit(code)\ndef neg(x):\n    return -x\n"
         "class Overlapping:\n    chunks_in_flight = 2\n"
         "    def __init__(self, threads=1):\n        self.active, self.most, self.lock = 0, 0, threading.Lock()\n"
         "    def run(self, i):\n        with self.lock:\n            self.active += 1\n"
         "            self.most = max(self.most, self.active)\n        time.sleep(0.3)\n"
         "        with self.lock:\n            self.active -= 1\n        return self.most\n", ns)
    # one logical GPU: Ray schedules GPU actors on it whether or not the machine has one
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    ex = RayExecutor(RunnerConfig(workers=2, max_retries=1))
    try:
        results = dict(ex.map(ns["neg"], [(-1,), (-2,)]))
        assert results == {0: 1, 1: 2}
        crashed = dict(ex.map(ns["die"], [(3,)]))
        assert isinstance(crashed[0], Exception)
        assert dict(ex.map(ns["neg"], [(-5,)])) == {0: 5}  # still usable afterwards
        # a GPU actor takes chunks_in_flight calls at a time (CPU actors one: every other Ray test)
        calls = [(i,) for i in range(4)]
        assert max(dict(ex.map_actors(ns["Overlapping"], (), "run", calls, gpus_per_worker=1.0)).values()) == 2
    finally:
        ex.close()
        ray.shutdown()


LEAN_RAY_SCRIPT = """
import os, psutil
from aig.pipeline.runner import start_ray
ray, owned, address = start_ray(None, 2)
assert owned and address == "local"
print("task", ray.get(ray.remote(num_cpus=1)(lambda x: -x).remote(3)))
print("processes", [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)])
children = psutil.Process().children(recursive=True)
ray.shutdown()
print("left", [p.pid for p in psutil.wait_procs(children, timeout=10)[1]])
"""


def test_embedded_ray_starts_only_what_the_pipeline_uses_and_stops_it_all():
    import ast
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", LEAN_RAY_SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["task"] == "-3"
    started = " ".join(ast.literal_eval(lines["processes"]))
    assert "gcs_server" in started and "raylet" in started
    for unused in ("dashboard/dashboard.py", "autoscaler/_private/monitor.py", "log_monitor.py"):
        assert unused not in started, unused
    assert ast.literal_eval(lines["left"]) == []


def test_autoencoder_tiny_loads_by_path_and_reconstructs(tmp_path):
    import torch
    from diffusers import AutoencoderTiny

    from aig.generators.autoencoder import crop_to_multiple, load_autoencoder, reconstruct

    AutoencoderTiny(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                    num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1)).save_pretrained(tmp_path / "taesd")
    ae = load_autoencoder(str(tmp_path / "taesd"), None, None, "cpu", torch.float32)
    assert ae.class_name == "AutoencoderTiny" and not ae.has_posterior and ae.factor == 2
    box = crop_to_multiple(33, 20, ae.factor)
    assert box == (0, 0, 32, 20)
    y = reconstruct(ae, torch.zeros(2, 3, 20, 32), [1, 2], "sample")
    assert y.shape == (2, 3, 20, 32) and y.min() >= -1 and y.max() <= 1


def test_generator_names_are_key_safe():
    from aig.generators.naming import generator_name

    assert generator_name("stabilityai/stable-diffusion-2-1", "vae") == "stable_diffusion_2_1_vae"
    assert generator_name("/models/sd-v1.5/") == "sd_v1_5"
    assert generator_name("embedded") == "tinyvae"


def test_check_output_refuses_overlap_with_inputs(tmp_path):
    from aig.pipeline.build import BuildError, check_output
    from aig.pipeline.config import InputConfig

    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for out, message in [(photos / "sub", "lies inside input folder"), (tmp_path, "contains input folder"),
                         (photos, "is input folder")]:
        with pytest.raises(BuildError, match=message):
            check_output(out, InputConfig(folders=[str(photos)]))
    with pytest.raises(BuildError, match="contains input folder"):
        check_output(tmp_path, InputConfig(shards=[str(photos)]))
    check_output(tmp_path / "new", InputConfig(folders=[str(photos)]))  # a fresh folder next to the inputs is fine
    (tmp_path / "ds" / "manifest").mkdir(parents=True)
    (tmp_path / "ds" / "notes.txt").write_text("mine")
    check_output(tmp_path / "ds", InputConfig(folders=[str(photos)]))  # a dataset may hold the user's files too


def test_config_values_are_type_checked():
    from aig.pipeline.config import ConfigError, load_config

    for key, value, message in [("ingest.size", "big", "'ingest.size' must be an integer, got 'big'"),
                                ("ingest.size", 256.5, "'ingest.size' must be an integer, got 256.5"),
                                ("ingest.size", True, "must be an integer"),
                                ("split.train", "0.8", "'split.train' must be a number"),
                                ("stages", ["ingest", 3], "'stages' must hold a string, got 3")]:
        with pytest.raises(ConfigError, match=message):
            load_config(None, {key: value})
    assert load_config(None, {"split.train": 1, "split.val": 0, "split.test": 0}).split.train == 1


def test_redact_masks_keys_and_url_credentials():
    from aig.pipeline.redact import command_line, redact_url

    assert command_line(["label-semantic", "--api-key", "sk-1", "--base-url", "http://u:pw@h:8000/v1", "--token=t",
                         "--model", "m"]) == \
        "aig label-semantic --api-key *** --base-url http://***@h:8000/v1 --token=*** --model m"
    assert redact_url("HTTP 500 from https://tok@api.x/v1/chat?key=abc&n=1 (user a@b.c)") == \
        "HTTP 500 from https://***@api.x/v1/chat?key=***&n=1 (user a@b.c)"
    assert redact_url("s3://bucket/data/x.png") == "s3://bucket/data/x.png"


def test_card_features_from_json_structure():
    from aig.pipeline.card import feature, record_structure

    s = record_structure({"seed": "UBIGINT", "guidance": "DOUBLE", "crop": ["UBIGINT"], "never": "NULL",
                          "mixed": "JSON", "batch": ["VARCHAR"]},
                         {"messages": [{"role": "VARCHAR", "content": [{"type": "VARCHAR", "text": "VARCHAR"}]}]})
    f = {x["name"]: x for x in feature("json", s)["struct"]}
    assert f["cls"] == {"name": "cls", "dtype": "int64"} and f["width"]["dtype"] == "int64"
    assert "shard" not in f and "run_id" not in f  # not in the tar's JSON
    prov = {x["name"]: x for x in f["provenance"]["struct"]}
    assert prov["seed"]["dtype"] == "int64" and prov["guidance"]["dtype"] == "float64"
    assert prov["crop"] == {"name": "crop", "list": "int64"} and "never" not in prov and "mixed" not in prov
    assert f["messages"]["list"][1] == {"name": "role", "dtype": "string"}


def test_record_json_has_cls_and_no_nulls():
    import json

    from aig.pipeline.chunks import sample_outcome

    o = sample_outcome("k1", b"x", "png", {"jpeg_quality": None, "crop": [0, 1]}, None, label="fake", caption=None,
                       split="train", run_id="run-0001")
    meta = json.loads(o.sample.members["json"])
    assert meta == {"cls": 1, "format": "png", "key": "k1", "label": "fake", "provenance": {"crop": [0, 1]},
                    "split": "train"}


def test_catalog_points_elsewhere(tmp_path):
    from aig.manifests.catalog import points_elsewhere

    mine = f"create view samples as select * from read_parquet('{tmp_path.resolve()}/manifest/samples/*.parquet')"
    other = "create view samples as select * from read_parquet('/old/place/manifest/samples/*.parquet')"
    empty = "create view runs as select null::VARCHAR as run_id where false"
    assert not points_elsewhere([mine, empty], tmp_path) and points_elsewhere([mine, other], tmp_path)


def test_dataset_owns_tables_runs_done_markers_and_the_lock(tmp_path):
    from aig.manifests.dataset import Dataset, DatasetBusy
    from aig.manifests.schema import RUNS

    ds = Dataset(tmp_path / "ds")
    assert not ds.is_dataset() and ds.new_run_id() == "run-0001"
    ds.write_run({"run_id": "run-0001", "status": "running", "n_inputs": 3})  # the table's schema, nulls filled in
    assert ds.runs == [{**{c: None for c, _ in RUNS}, "run_id": "run-0001", "status": "running", "n_inputs": 3}]
    assert ds.new_run_id() == "run-0002"
    ds.mark_done("real-000000", {"samples": 1})
    assert ds.done_markers() == {"real-000000": {"samples": 1}} and ds.is_dataset()
    assert Dataset.is_done_rel("manifest/done/real-000000.json") and Dataset.is_table_rel("manifest/runs/x", "runs")
    (ds.root / "photo.jpg").write_bytes(b"")
    assert [p.name for p in ds.foreign_entries()] == ["photo.jpg"]
    with ds.lock():
        with pytest.raises(DatasetBusy, match="is writing"):
            with ds.lock():
                pass
    with ds.lock():  # released
        pass
