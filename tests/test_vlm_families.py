"""Every supported VLM family labels (`aig label-semantic`) and trains (`aig train --branch semantic`) with the
defaults, each from a tiny random-weight model built from its real config classes; plus the family helpers."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_aig, sql_rows
from semantic_data import write_sft_dataset

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm", "gemma3", "paligemma"]  # llava: test_labeling.py


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """4 semantic-sft training records, 1 val record, 4 images to label (2 reals, 2 fakes)."""
    return write_sft_dataset(tmp_path_factory.mktemp("families") / "ds", n_train=4, n_val=1, size=(40, 32),
                             n_candidates=4)


@pytest.mark.parametrize("family", FAMILIES)
def test_family_labels_and_trains_with_defaults(family, dataset, tmp_path):
    from safetensors.torch import load_file

    from labeling.tiny_vlm import build_tiny_vlm

    vlm = build_tiny_vlm(family, tmp_path / "vlm")
    ds = tmp_path / "ds"
    shutil.copytree(dataset, ds)
    # the default batch size puts all 4 images in one generate call
    run_aig("label-semantic", "-d", ds, "--model", vlm, "--executor", "local", "--max-new-tokens", "48",
            "--max-attempts", "1")
    labels = sql_rows(ds, "select key, label, verdict, decision, parse_status from semantic_labels order by key")
    assert [r["key"] for r in labels] == [f"{i:04d}-cand" for i in range(4)]
    assert not sql_rows(ds, "select * from failures")
    assert all(r["decision"] in ("accepted", "excluded", "quarantined", "invalid") for r in labels)

    out = tmp_path / "run"
    proc = run_aig("train", "--branch", "semantic", "-d", ds, "-o", out, "--model", vlm, "--max-steps", "2",
                   "--batch-size", "2", "--no-progress")
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 2 and summary["val"]["records"] == 1
    weights = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    prefix = "text_model" if family in ("idefics3", "smolvlm") else "language_model"
    assert weights and all(f".{prefix}.layers." in k for k in weights), sorted(weights)[:3]  # never the vision tower


def test_eos_ids_are_all_kept():
    from types import SimpleNamespace

    from labeling.vlm import eos_ids

    tok = SimpleNamespace(eos_token_id=1)
    assert eos_ids(SimpleNamespace(eos_token_id=[1, 106, 1]), tok) == [1, 106]
    assert eos_ids(SimpleNamespace(eos_token_id=7), tok) == [7]
    assert eos_ids(SimpleNamespace(eos_token_id=None), tok) == [1]


def test_prefix_lm_prompt_and_answer_token_types(tmp_path):
    from transformers import AutoProcessor

    from labeling.records import conversation
    from labeling.tiny_vlm import build_tiny_vlm
    from labeling.vlm import VLMFormatError, answer_token_type, render

    proc = AutoProcessor.from_pretrained(build_tiny_vlm("paligemma", tmp_path / "pg"))
    msgs = conversation("real", [])
    prompt = render(proc, msgs[:-1], add_generation_prompt=True)
    full = render(proc, msgs, add_generation_prompt=False)
    assert prompt == "<image>" + msgs[0]["content"][1]["text"]
    assert full == prompt + msgs[1]["content"][0]["text"] + proc.tokenizer.eos_token
    assert answer_token_type(proc) == 1  # the answer is PaliGemma's causal suffix
    proc.__class__ = type("OtherProcessor", (type(proc),), {})  # no chat template and no known format
    with pytest.raises(VLMFormatError, match="no chat template"):
        render(proc, msgs, add_generation_prompt=True)
