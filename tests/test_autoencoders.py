"""Every diffusers autoencoder class aig drives, and outputs that must never be stored (non-finite, flat).

One build serves every test: a tiny model of each class and the faulty models reconstruct the same three images.
"""

from __future__ import annotations

import json
import math

import pytest
from conftest import run_aig, sql_rows
from corpus import make_images

from aig.generators.tiny_models import TINY_AUTOENCODERS

CLASSES = list(TINY_AUTOENCODERS)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One float16 build (run on CPU here; float16 is the GPU default) of three small images through a tiny model
    of every class, then faulty ones: overflowing only in float16 (without and with force_upcast), NaN in any
    dtype, decoding everything flat, the trained embedded one, and last one that fails its probe (3-channel
    images into a 4-channel encoder), which stops the build after the others finished."""
    from aig.generators.tiny_models import build_tiny_autoencoder

    base = tmp_path_factory.mktemp("ae")
    make_images(base / "in", 2, size=(64, 48), fmt="PNG")
    make_images(base / "in", 1, size=(40, 40), fmt="JPEG", seed=3)
    m = base / "models"
    classes = {name: build_tiny_autoencoder(m / name.lower(), name) for name in CLASSES}
    faulty = [build_tiny_autoencoder(m / "overflow", fault="fp16_overflow", force_upcast=False),
              build_tiny_autoencoder(m / "forced", fault="fp16_overflow", force_upcast=True),
              build_tiny_autoencoder(m / "nan", fault="nan", force_upcast=False),
              build_tiny_autoencoder(m / "flat", fault="flat", force_upcast=False),
              "embedded",
              build_tiny_autoencoder(m / "fourchannel", in_channels=4)]
    (base / "aig.toml").write_text('[reconstruct]\ndtype = "float16"\n')
    args = ["build-data", "-c", base / "aig.toml", "-o", base / "ds", "--input-dir", base / "in", "--executor", "local"]
    for a in [*classes.values(), *faulty]:
        args += ["--autoencoder", a]
    proc = run_aig(*args, "--stages", "ingest,reconstruct", check=False)
    return base / "ds", proc, classes


@pytest.mark.parametrize("class_name", CLASSES)
def test_autoencoder_class_pairs_and_regenerate(built, class_name):
    from aig.generators.regenerate import regenerate

    out, _, classes = built
    config = json.loads((classes[class_name] / "config.json").read_text())
    rows = sql_rows(out, f"""
        select s.pair_id, s.label, s.width, s.height, s.split, s.key, s.recon_psnr, s.provenance, r.split as real_split
        from samples s join samples r on r.key = s.source_id
        where s.task = 'pixel' and s.generator = '{class_name.lower()}' order by s.pair_id, s.label""")
    assert len(rows) == 6
    for fake, real in zip(rows[::2], rows[1::2]):
        assert (fake["label"], real["label"]) == ("fake", "real") and fake["pair_id"] == real["pair_id"]
        assert (fake["width"], fake["height"], fake["split"]) == (real["width"], real["height"], real["split"])
        assert fake["split"] == fake["real_split"]
        assert math.isfinite(fake["recon_psnr"]) and real["recon_psnr"] is None
        prov = json.loads(fake["provenance"])
        assert prov["class"] == class_name and prov["dtype"] == "float16"
        assert prov["upcast"] == ("force_upcast" if config.get("force_upcast") else None)
    assert regenerate(out, rows[0]["key"]).identical


def test_float16_overflow_is_upcast_and_bad_outputs_are_failures(built):
    from aig.generators.regenerate import regenerate

    out, _, _ = built
    upcast = sql_rows(out, "select generator, provenance->>'upcast' as upcast, count(*) as n from samples "
                           "where generator in ('forced', 'overflow', 'tinyvae') and label = 'fake' "
                           "group by all order by generator")
    assert upcast == [{"generator": "forced", "upcast": "force_upcast", "n": 3},
                      {"generator": "overflow", "upcast": "non_finite", "n": 3},
                      {"generator": "tinyvae", "upcast": "force_upcast", "n": 3}]
    failures = sql_rows(out, "select chunk, reason, error from failures where stage = 'reconstruct' order by chunk")
    assert [(f["chunk"].split("-")[1], f["reason"]) for f in failures] == [("flat", "degenerate")] * 3 + \
        [("nan", "non_finite")] * 3
    assert "even after a retry in float32" in failures[-1]["error"]
    assert sql_rows(out, "select count(*) as n from samples where generator in ('nan', 'flat')") == [{"n": 0}]
    key = sql_rows(out, "select key from samples where generator = 'overflow' and label = 'fake' limit 1")[0]["key"]
    assert regenerate(out, key).identical  # the float16 run, its non-finite output, the float32 retry


def test_audit_flags_degenerate_reconstructions(built):
    out, _, _ = built
    proc = run_aig("audit", out, "--json", "--strict", check=False)
    degenerate = {d["generator"]: d for d in json.loads(proc.stdout)["degenerate"]}
    assert proc.returncode == 1
    assert {"overflow", "forced", "autoencoderkl"} <= set(degenerate)  # random weights: about 12 dB
    assert "tinyvae" not in degenerate  # the trained embedded autoencoder reconstructs above the floor
    assert all(d["median_psnr"] < d["floor"] == 15.0 for d in degenerate.values())


def test_probe_failure_is_one_line_and_dataset_stays_usable(built):
    out, proc, _ = built
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "fourchannel" in err[0] and "(AutoencoderKL) fails the probe" in err[0], proc.stderr
    assert (out / "catalog.duckdb").exists()
    assert sql_rows(out, "select status from runs") == [{"status": "running"}]  # re-running the command finishes it
    assert sql_rows(out, "select count(*) as n from samples where generator = 'overflow'") == [{"n": 6}]
