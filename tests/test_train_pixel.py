"""Pixel-branch training: paired augmentation, the shard stream, the CLI end to end, resume, corrupt members."""

from __future__ import annotations

import io
import json
import random
import shutil
import tarfile

import numpy as np
import pytest
from conftest import run_aig, sql_rows, start_and_kill
from PIL import Image

FAST = ["--crop-size", "32", "--batch-size", "4", "--crops-per-pair", "2", "--threads", "1", "--no-progress",
        "--log-every", "1", "--warmup-steps", "2"]


def _noise_image(seed: int, size=(96, 80)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def test_paired_augmentation_is_identical_within_a_pair():
    from aig.training.augment import AugmentRecipe, apply_params, pair_crops

    recipe = AugmentRecipe(crop_size=32, flip_p=0.5, jpeg_p=0.7, blur_p=0.5, resample_p=0.5)
    real = _noise_image(1)
    fake = real.copy()  # same pixels: identical augmentation must give identical crops
    crops = pair_crops(real, fake, random.Random(3), recipe, 40)
    kinds = set()
    for r, f, p in crops:
        assert r.size == f.size == (32, 32)
        assert r.tobytes() == f.tobytes()
        kinds |= set(p)
    assert {"crop", "flip", "jpeg", "blur", "scale"} <= kinds  # every augmentation was exercised
    # a different fake gets the very same operations: crop box and all
    other = _noise_image(2)
    for (r, f, p) in pair_crops(real, other, random.Random(3), recipe, 10):
        assert f.tobytes() == apply_params(other, p, 32).tobytes()
        assert r.tobytes() == apply_params(real, p, 32).tobytes()
    # without resampling, the crop is native pixels: no resizing
    plain = AugmentRecipe(crop_size=32, flip_p=0, jpeg_p=0, blur_p=0)
    r, _, p = pair_crops(real, other, random.Random(0), plain, 1)[0]
    x, y = p["crop"]
    assert r.tobytes() == real.crop((x, y, x + 32, y + 32)).tobytes()


def test_stream_reads_only_train_pairs_deterministically(pixel_dataset):
    import itertools

    from aig.training.augment import AugmentRecipe
    from aig.training.pixel_stream import StreamSpec, batches
    from aig.training.shards import split_shards

    counts = sql_rows(pixel_dataset, "select split, count(distinct pair_id) as n from samples where task='pixel' "
                                     "group by all order by all")
    assert counts == [{"split": "test", "n": 4}, {"split": "train", "n": 7}, {"split": "val", "n": 1}]  # --split
    shards = split_shards(pixel_dataset, "pixel", "train")
    assert shards and all("/train/" in s for s in shards)
    train = {r["pair_id"] for r in sql_rows(pixel_dataset, "select pair_id from samples where task='pixel' and split='train'")}
    spec = StreamSpec(shards, AugmentRecipe(crop_size=32), [0.5] * 3, [0.5] * 3, batch_size=4, crops_per_pair=2)
    got = list(itertools.islice(batches(spec, 0, 1), 12))
    again = list(itertools.islice(batches(spec, 0, 1), 12))
    seen = {p for b in got for p in b["pairs"]}
    assert seen == train  # every train pair, nothing else (3 epochs' worth)
    for a, b in zip(got, again):
        assert a["pairs"] == b["pairs"] and bool((a["x"] == b["x"]).all())
        assert a["y"].tolist() == [0.0, 1.0] * 4 and a["x"].shape == (8, 3, 32, 32)
    assert got[-1]["epoch"] >= 1
    # two slots (ranks or workers) split the pairs between them
    halves = [{p for b in itertools.islice(batches(StreamSpec(**{**spec.__dict__, "rank": r, "world": 2}), 0, 1), 3)
               for p in b["pairs"]} for r in (0, 1)]
    assert halves[0] and halves[1] and not halves[0] & halves[1]


def _corrupt_one_png(tar_path):
    with tarfile.open(tar_path) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    victim = next(m.name for m, _ in members if m.name.endswith("-recon.png"))
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for m, data in members:
            if m.name == victim:
                data = b"\x89PNG\r\n\x1a\n" + b"garbage" * 50
                m.size = len(data)
            tf.addfile(m, io.BytesIO(data))
    return victim


def test_train_cli_exports_a_detector_skipping_a_corrupt_member_never_reading_test(pixel_dataset, tmp_path):
    from aig.training.checkpoint import load_pixel_model, score_images

    ds = tmp_path / "ds"
    shutil.copytree(pixel_dataset, ds)
    (train_tar,) = [r["shard"] for r in sql_rows(ds, "select distinct shard from samples where task='pixel' and split='train'")]
    _corrupt_one_png(ds / train_tar)
    for r in sql_rows(ds, "select distinct shard from samples where split='test'"):
        (ds / r["shard"]).write_bytes(b"not a tar")  # reading it would count more skips (or fail)
    out = tmp_path / "run"
    proc = run_aig("train", "--branch", "pixel", "-d", ds, "-o", out, "--max-steps", "4", *FAST,
                   "--log-with", "tensorboard")
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 4 and summary["output"] == str(out / "final")
    assert summary["skipped"] == 1  # the corrupt member, counted once; the test split never opened
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [1, 2, 3, 4]
    assert all(r["lr"] > 0 and r["images_per_s"] > 0 for r in lines if "loss" in r)
    assert lines[-2]["skipped"] == 1 and "val_auroc" in lines[-1] and lines[-1]["val_pairs"] >= 1
    # the same metrics as TensorBoard event files beside metrics.jsonl, read back by TensorBoard's own reader
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = out.glob("events.out.tfevents.*")
    acc = EventAccumulator(str(out))
    acc.Reload()
    assert [(e.step, round(e.value, 5)) for e in acc.Scalars("loss")] == [
        (r["step"], round(r["loss"], 5)) for r in lines if "loss" in r]
    assert "val/auroc" in acc.Tags()["scalars"] and "lr" in acc.Tags()["scalars"]
    cfg = json.loads((out / "final" / "config.json").read_text())
    assert cfg["model"] == "aig_tinycnn" and cfg["crop_size"] == 32 and cfg["augment"]["crop_size"] == 32
    assert cfg["dataset"]["run_ids"] == ["run-0001"] and cfg["dataset"]["calibration_pairs"]
    assert all("/train/" in s for s in cfg["dataset"]["train_shards"])
    assert 0 < cfg["threshold"] < 1 and len(cfg["mean"]) == 3
    assert not [p for p in out.rglob("*") if p.suffix in (".pt", ".pth", ".pkl", ".bin")]  # no pickles
    model, cfg2 = load_pixel_model(out / "final")
    imgs = [_noise_image(5, (50, 40)), _noise_image(6, (200, 120))]
    p = score_images(model, cfg2, imgs)
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()
    # its weights serve as --pretrained for another run (head re-initialised only when its shape differs)
    from aig.training.models import ModelError, create_backbone

    again = create_backbone("aig_tinycnn", str(out / "final"))
    assert all(bool((a == b).all()) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    with pytest.raises(ModelError, match="do not fit"):
        create_backbone("resnet18", str(out / "final" / "model.safetensors"))
    # the export scores exactly what the trained model scored on validation
    from aig.training.pixel import evaluate_pairs
    from aig.training.pixel_stream import read_pairs
    from aig.training.shards import split_shards

    val = evaluate_pairs(model, cfg2, list(read_pairs(split_shards(ds, "pixel", "val"))), "cpu")
    assert val["auroc"] == cfg["val"]["auroc"] and val["balanced_accuracy"] == cfg["val"]["balanced_accuracy"]


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted_run(pixel_dataset, tmp_path):
    from safetensors.torch import load_file

    from aig import train

    args = ["train", "-d", pixel_dataset, "--max-steps", "5", "--save-every", "1", "--loader-workers", "2", *FAST]
    options = {"dataset": str(pixel_dataset), "output": str(tmp_path / "a"), "max_steps": 5, "save_every": 1,
               "loader_workers": 2, "crop_size": 32, "batch_size": 4, "crops_per_pair": 2, "threads": 1,
               "progress": False, "log_every": 1, "warmup_steps": 2}
    train("pixel", **options)  # uninterrupted, in-process
    b = tmp_path / "b"
    start_and_kill([*args, "-o", b], b / "checkpoints" / "last", "state.json", 1)
    step = json.loads((b / "checkpoints" / "last" / "state.json").read_text())["step"]
    assert 1 <= step < 5
    run_aig(*args, "-o", b, "--resume")
    wa, wb = load_file(str(tmp_path / "a" / "final" / "model.safetensors")), load_file(str(b / "final" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)
    la = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r.get("loss")) for r in la] == [(r["step"], r.get("loss")) for r in lb]
    # a resume with other settings is refused, naming them
    from aig.training.config import ConfigError

    with pytest.raises(ConfigError, match="different settings.*: lr"):
        train("pixel", **{**options, "output": str(b), "resume": True, "lr": 0.1})


def test_bad_inputs_fail_clearly(pixel_dataset, tmp_path):
    from aig import train

    p = run_aig("train", "-d", pixel_dataset, "-o", tmp_path / "r", "--model", "no_such_net", check=False)
    assert p.returncode == 2 and "unknown timm model 'no_such_net'" in p.stderr
    p = run_aig("build-data", "-o", tmp_path / "x", "--split", "0.5,0.5", check=False)
    assert p.returncode == 2 and "--split takes three fractions" in p.stderr and not (tmp_path / "x").exists()
    cases = [({"dataset": str(tmp_path / "nowhere")}, "build one with `aig build-data"),
             ({"pretrained": str(tmp_path / "missing.safetensors")}, "no such file or folder"),
             ({"merge": True}, "--merge apply to --branch semantic only"),
             ({"resume": True}, "no checkpoint in"),
             ({"log_with": ["wandb"]}, "--log-with 'wandb' unknown"),
             ({"jpeg_quality": [90, 10]}, "jpeg_quality must be a range"),
             ({"loader_workers": 50}, "cannot feed 1 rank(s) x 50 loader worker(s)")]
    for extra, message in cases:
        with pytest.raises(ValueError) as e:
            train("pixel", **{"dataset": str(pixel_dataset), "output": str(tmp_path / "r"), **extra})
        assert message in str(e.value)
    assert not (tmp_path / "r" / "final").exists()


@pytest.mark.slow
def test_ray_train_two_cpu_workers_ddp(pixel_dataset, tmp_path):
    """--num-workers 2: a Ray Train TorchTrainer with DDP over gloo; each rank reads its own share."""
    from safetensors.torch import load_file

    out = tmp_path / "ray"
    proc = run_aig("train", "-d", pixel_dataset, "-o", out, "--num-workers", "2", "--max-steps", "3",
                   "--loader-workers", "0", *FAST)
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 3 and (out / "final" / "model.safetensors").is_file()
    state = json.loads((out / "checkpoints" / "last" / "state.json").read_text())
    assert len(state["positions"]) == 2 and all(p["0"][0] > 0 for p in state["positions"])
    rng = load_file(str(out / "checkpoints" / "last" / "state.safetensors"))
    assert {"rng.torch.0", "rng.torch.1"} <= set(rng)
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()][:3] == [1, 2, 3]
