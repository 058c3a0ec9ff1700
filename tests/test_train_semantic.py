"""Semantic-branch training: answer-only labels, scrambling, one real LoRA SFT run through the CLI, loading."""

from __future__ import annotations

import json

import pytest
from conftest import run_aig
from semantic_data import write_sft_dataset


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    from aig.labeling.tiny_vlm import build_tiny_llava

    base = tmp_path_factory.mktemp("sft")
    return {"ds": write_sft_dataset(base / "ds"), "vlm": build_tiny_llava(base / "vlm")}


def test_labels_cover_the_answer_tokens_only_and_images_are_scrambled(sft):
    import io

    from PIL import Image
    from transformers import AutoProcessor

    from aig.labeling.records import answer_text
    from aig.labeling.scramble import scramble
    from aig.training.pixel_stream import Skips
    from aig.training.semantic_data import read_records, scrambled_image, sft_batch
    from aig.training.shards import split_shards

    proc = AutoProcessor.from_pretrained(sft["vlm"])
    recs = read_records(split_shards(sft["ds"], "semantic-sft", "train"), Skips())
    assert len(recs) == 8 and {r.label for r in recs} == {"real", "fake"}
    batch = sft_batch(proc, recs[:3], 2048)
    for row, rec in enumerate(recs[:3]):
        ids = batch["labels"][row][batch["labels"][row] != -100]
        text = proc.tokenizer.decode(ids, skip_special_tokens=True)
        assert text.strip() == answer_text(rec.label, [{"category": "anatomy", "description": "the left half is dark"}]
                                           if rec.label == "fake" else [])
    img = scrambled_image(recs[0])
    raw = Image.open(io.BytesIO(recs[0].image))
    assert img.size != raw.size and img.tobytes() == scramble(raw, recs[0].scramble).tobytes()


def test_semantic_cli_trains_a_lora_adapter_and_merges(sft, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "sem"
    proc = run_aig("train", "--branch", "semantic", "-d", sft["ds"], "-o", out, "--model", sft["vlm"], "--max-steps", "3",
                   "--batch-size", "2", "--lr", "0.01", "--warmup-steps", "1", "--log-every", "1", "--merge",
                   "--gradient-checkpointing", "--no-progress")
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 3 and summary["records"] == 8 and summary["val"]["records"] == 2
    assert 0 <= summary["val"]["auroc"] <= 1
    adapter = out / "adapter"
    for f in ("adapter_model.safetensors", "adapter_config.json", "processor_config.json", "training.json"):
        assert (adapter / f).is_file(), f
    info = json.loads((adapter / "training.json").read_text())
    assert info["dataset"]["run_ids"] == ["run-0001"] and info["config"]["gradient_checkpointing"] is True
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [1, 2, 3]
    assert not [p for p in out.rglob("*") if p.suffix in (".pt", ".pth", ".pkl", ".bin")]
    # the adapter loads on its base for inference and equals the merged model
    from aig.training.semantic import load_semantic_model

    with_adapter, processor, info2 = load_semantic_model(adapter)
    assert isinstance(with_adapter, PeftModel) and info2["base_model"] == str(sft["vlm"])
    merged, _, _ = load_semantic_model(out / "merged")
    from aig.training.pixel_stream import Skips
    from aig.training.semantic_data import read_records, sft_batch
    from aig.training.shards import split_shards

    rec = read_records(split_shards(sft["ds"], "semantic-sft", "val"), Skips())[:1]
    batch = sft_batch(processor, rec, 2048)
    batch.pop("labels")
    with torch.no_grad():
        a, b = with_adapter(**batch).logits, merged(**batch).logits
        plain = AutoModelForImageTextToText.from_pretrained(sft["vlm"]).eval()(**batch).logits
    assert torch.allclose(a, b, atol=1e-4) and not torch.allclose(a, plain, atol=1e-4)  # it learned something


def test_semantic_bad_inputs(sft, tmp_path):
    from aig import train

    for extra, msg in [({}, "needs --model"), ({"model": str(tmp_path / "nope")}, "could not load VLM"),
                       ({"model": str(sft["vlm"]), "crop_size": 32}, "--crop-size apply to --branch pixel only"),
                       ({"model": str(sft["vlm"]), "lora_targets": ["no_such_module"]}, "match no module")]:
        with pytest.raises(ValueError, match=msg):
            train("semantic", dataset=str(sft["ds"]), output=str(tmp_path / "o"), max_steps=1, **extra)


@pytest.mark.slow
def test_semantic_resume_after_kill_equals_uninterrupted_run(sft, tmp_path):
    from conftest import start_and_kill
    from safetensors.torch import load_file

    args = ["train", "--branch", "semantic", "-d", sft["ds"], "--model", sft["vlm"], "--max-steps", "6",
            "--save-every", "1", "--batch-size", "2", "--lr", "0.01", "--no-progress", "--log-every", "1"]
    run_aig(*args, "-o", tmp_path / "a")
    b = tmp_path / "b"
    start_and_kill([*args, "-o", b], b / "checkpoints" / "last", "state.json", 1)
    assert json.loads((b / "checkpoints" / "last" / "state.json").read_text())["step"] < 6
    run_aig(*args, "-o", b, "--resume")
    wa = load_file(str(tmp_path / "a" / "adapter" / "adapter_model.safetensors"))
    wb = load_file(str(b / "adapter" / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)


@pytest.mark.slow
def test_semantic_on_ray_train_two_cpu_workers(sft, tmp_path):
    out = tmp_path / "ray"
    proc = run_aig("train", "--branch", "semantic", "-d", sft["ds"], "-o", out, "--model", sft["vlm"],
                   "--num-workers", "2", "--max-steps", "2", "--batch-size", "2", "--log-every", "1")
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 2 and (out / "adapter" / "adapter_model.safetensors").is_file()
    from safetensors.torch import load_file

    assert {"rng.torch.0", "rng.torch.1"} <= set(load_file(str(out / "checkpoints" / "last" / "state.safetensors")))
