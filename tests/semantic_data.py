"""A tiny dataset of semantic-sft records written exactly as the labeling contract says (for training tests)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def write_sft_dataset(root: Path, n_train: int = 8, n_val: int = 2, size=(48, 40), n_candidates: int = 0) -> Path:
    """`n_train` + `n_val` semantic-sft records and, with `n_candidates`, that many images for `aig label-semantic`
    (task 'both' reals and task 'semantic' fakes, alternating, train split)."""
    from aig.labeling.records import conversation
    from aig.labeling.scramble import ScrambleRanges, draw_recipe
    from aig.manifests.catalog import refresh_catalog
    from aig.pipeline.chunks import sample_outcome, write_chunk
    from aig.pipeline.config import ShardConfig

    rng = np.random.default_rng(0)
    outcomes = []
    for i in range(n_train + n_val):
        split = "train" if i < n_train else "val"
        label = "fake" if i % 2 else "real"
        arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        if label == "fake":
            arr[:, : size[0] // 2] = arr[:, : size[0] // 2] // 4  # something to see
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "PNG")
        key = f"{i:04d}-sft"
        incons = [{"category": "anatomy", "description": "the left half is dark"}] if label == "fake" else []
        extra = {"messages": conversation(label, incons), "scramble": draw_recipe(key, ScrambleRanges()),
                 "annotator": "test", "prompt_version": "v1", "source_key": f"{i:04d}"}
        outcomes.append(sample_outcome(key, buf.getvalue(), "png", {"kind": "semantic-sft"}, extra, run_id="run-0001",
                                       stage="label-semantic", task="semantic-sft", split=split, label=label,
                                       source_id=f"{i:04d}", group_id=f"{i:04d}", width=size[0], height=size[1]))
    write_chunk(root, "sft-test-v1", 0, outcomes, ShardConfig(), "label-semantic", "run-0001")
    if n_candidates:
        cands = []
        for i in range(n_candidates):
            fake = i % 2 == 1
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
            key = f"{i:04d}-cand"
            cands.append(sample_outcome(key, buf.getvalue(), "png", {"kind": "test"}, {}, run_id="run-0001",
                                        stage="generate" if fake else "ingest", task="semantic" if fake else "both",
                                        split="train", label="fake" if fake else "real", source_id=key, group_id=key,
                                        generator="tiny-t2i" if fake else None, width=size[0], height=size[1]))
        write_chunk(root, "candidates-test", 0, cands, ShardConfig(), "ingest", "run-0001")
    refresh_catalog(root)
    return root
