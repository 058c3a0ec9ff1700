"""JPEG sources: their pairs are jpeg-matched by default and reach training; PNG pairs built from them keep
the reals' JPEG grid while the reconstructions lose it, and the audit sees it in the stored pixels."""

from __future__ import annotations

import json

import pytest
from conftest import run_aig, sql_rows
from corpus import make_images
from test_train_pixel import FAST


@pytest.fixture(scope="module")
def jpeg_datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("jpeg-sources")
    make_images(base / "jpg", 6, size=(256, 192), fmt="JPEG")  # quality 90; big enough for the grid statistic
    out = {}
    for fmt in ("auto", "png"):
        out[fmt] = base / fmt
        run_aig("build-data", "-o", out[fmt], "--input-dir", base / "jpg", "--executor", "local", "--stages",
                "ingest,reconstruct", "--split", "0.6,0.4,0",
                *(["--pair-format", fmt] if fmt != "auto" else []))
    return out  # the bundled trained autoencoder: a random one is flagged degenerate (PSNR floor) by --strict


def test_audit_sees_the_jpeg_grid_that_png_pairs_keep_only_in_reals(jpeg_datasets):
    proc = run_aig("audit", jpeg_datasets["auto"], "--strict")  # the default: both members JPEG at the source's q
    assert "no shortcut" in proc.stdout and "| pixel | jpeg_trace | 0.500 | ok |" in proc.stdout
    pixel_rows = [line for line in proc.stdout.splitlines() if line.startswith("| pixel | train |")]
    assert len(pixel_rows) == 2 and all("| JPEG " in line and "| 90–90 | 90–90 |" in line for line in pixel_rows)
    proc = run_aig("audit", jpeg_datasets["png"], "--strict", check=False)
    assert proc.returncode == 1, proc.stdout
    assert "SHORTCUT: pixel: 'jpeg_trace' alone predicts the label" in proc.stdout
    assert "| pixel | format | 0.500 | ok |" in proc.stdout  # both PNG: the container alone cannot see it


def test_jpeg_matched_pairs_train_with_nothing_skipped(jpeg_datasets, tmp_path):
    ds = jpeg_datasets["auto"]
    n = {r["split"]: r["n"] for r in sql_rows(ds, "select split, count(distinct pair_id) as n from samples "
                                                  "where task = 'pixel' group by all")}
    assert n.get("train", 0) >= 3 and n.get("val", 0) >= 1
    out = tmp_path / "run"
    summary = json.loads(run_aig("train", "--branch", "pixel", "-d", ds, "-o", out, "--max-steps", "4", *FAST).stdout)
    assert summary["skipped"] == 0 and summary["val"]["pairs"] == n["val"]  # every val pair read
    assert summary["threshold_source"] == "1 held-back train pairs"  # the calibration pair read too
    logged = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert logged[-2]["epoch"] >= 1 and logged[-2]["skipped"] == 0  # a whole epoch of train pairs, none skipped
