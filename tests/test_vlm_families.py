"""Every supported VLM family labels (`aig label-semantic`) and trains (`aig train --branch semantic`) with the
defaults, each from a tiny random-weight model built from its real config classes; plus the family helpers."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_batch import run_aig_batch
from semantic_data import write_sft_dataset

FAMILIES = ["qwen2_vl", "qwen2_5_vl", "idefics3", "smolvlm", "gemma3", "paligemma"]  # llava: test_labeling.py


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Per family: a tiny model, a copy of ONE tiny dataset (4 semantic-sft training records, 1 val record, 4
    images to label), `aig label-semantic` then `aig train --branch semantic` with the defaults, all commands in
    one interpreter (cli_batch)."""
    from aig.labeling.tiny_vlm import build_tiny_vlm

    base = tmp_path_factory.mktemp("families")
    data = write_sft_dataset(base / "data", n_train=4, n_val=1, size=(40, 32), n_candidates=4)
    commands, out = [], {}
    for family in FAMILIES:
        ds, vlm, run = base / family / "ds", build_tiny_vlm(family, base / family / "vlm"), base / family / "run"
        shutil.copytree(data, ds)
        # the default batch size puts all 4 images in one generate call
        commands.append(["label-semantic", "-d", ds, "--model", vlm, "--executor", "local", "--max-new-tokens", "48",
                         "--max-attempts", "1"])
        commands.append(["train", "--branch", "semantic", "-d", ds, "-o", run, "--model", vlm, "--max-steps", "2",
                         "--batch-size", "2", "--no-progress"])
        out[family] = {"ds": ds, "run": run}
    results = run_aig_batch(commands)
    for i, family in enumerate(FAMILIES):
        out[family]["label"], out[family]["train"] = results[2 * i], results[2 * i + 1]
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_family_labels_and_trains_with_defaults(family, runs):
    from safetensors.torch import load_file

    from aig.manifests.catalog import query_rows

    r = runs[family]
    for step in ("label", "train"):
        assert r[step].returncode == 0, f"{family} {step}:\n{r[step].stdout}\n{r[step].stderr}"
    ds = r["ds"]
    labels = query_rows(ds, "select key, label, verdict, decision, parse_status from semantic_labels order by key")
    assert [x["key"] for x in labels] == [f"{i:04d}-cand" for i in range(4)]
    assert not query_rows(ds, "select * from failures")
    assert all(x["decision"] in ("accepted", "excluded", "quarantined", "invalid") for x in labels)
    summary = json.loads(r["train"].stdout)
    assert summary["steps"] == 2 and summary["val"]["records"] == 1
    weights = load_file(str(r["run"] / "adapter" / "adapter_model.safetensors"))
    prefix = "text_model" if family in ("idefics3", "smolvlm") else "language_model"
    assert weights and all(f".{prefix}.layers." in k for k in weights), sorted(weights)[:3]  # never the vision tower


def test_eos_ids_are_all_kept():
    from types import SimpleNamespace

    from aig.labeling.vlm import eos_ids

    tok = SimpleNamespace(eos_token_id=1)
    assert eos_ids(SimpleNamespace(eos_token_id=[1, 106, 1]), tok) == [1, 106]
    assert eos_ids(SimpleNamespace(eos_token_id=7), tok) == [7]
    assert eos_ids(SimpleNamespace(eos_token_id=None), tok) == [1]


def test_prefix_lm_prompt_and_answer_token_types(tmp_path):
    from transformers import AutoProcessor

    from aig.labeling.records import conversation
    from aig.labeling.tiny_vlm import build_tiny_vlm
    from aig.labeling.vlm import VLMFormatError, answer_token_type, render

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
