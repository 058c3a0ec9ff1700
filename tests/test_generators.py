"""Generators end to end: pixel pairs (autoencoder, inpainting) and text-to-image fakes, from tiny models on disk."""

from __future__ import annotations

import json
import time

import pytest
from conftest import run_aig, sql_rows, tar_digests
from corpus import make_images


def save_tiny_vae(path):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=8, mid_block_add_attention=False,
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from aig.generators.tiny_models import build_tiny_sd

    base = tmp_path_factory.mktemp("models")
    return {
        "vae": save_tiny_vae(base / "tiny-vae"),
        "t2i": build_tiny_sd(base / "tiny-sd"),
        "inpaint": build_tiny_sd(base / "tiny-sd-inpaint", inpaint=True),
    }


def make_inputs(folder, n=5):
    imgs = make_images(folder / "imgs", n, size=(90, 70), fmt="PNG")
    jpeg = make_images(folder / "jpg", 1, size=(90, 70), fmt="JPEG", seed=7)[0]
    lines = ["path,caption"] + [f"imgs/{p.name},a photo number {i}" for i, p in enumerate(imgs)]
    lines.append(f"jpg/{jpeg.name},a jpeg photo")
    (folder / "list.csv").write_text("\n".join(lines) + "\n")
    return folder / "list.csv"


def model_args(models):
    return ["--autoencoder", models["vae"], "--t2i-model", models["t2i"], "--t2i-size", 32, "--t2i-steps", 2,
            "--inpaint-model", models["inpaint"], "--inpaint-steps", 2, "--batch-size", 2]


@pytest.fixture(scope="module")
def built(models, tmp_path_factory):
    base = tmp_path_factory.mktemp("gen")
    out = base / "ds"
    prompts = base / "prompts.txt"
    prompts.write_text("# extra prompts\na red bicycle leaning on a wall\n\na bowl of soup\n")
    proc = run_aig("build-data", "-o", out, "--input-list", make_inputs(base), "--executor", "local",
                   "--prompts", prompts, *model_args(models))
    return out, proc


def test_all_stages_report(built):
    out, proc = built
    assert "ingest: 6 inputs -> 6 samples, 0 failures" in proc.stdout
    assert "reconstruct: 12 samples, 0 failures" in proc.stdout
    assert "inpaint: 12 samples, 0 failures" in proc.stdout
    assert "generate: 8 samples, 0 failures" in proc.stdout  # 6 captions + 2 prompts from the file
    assert "OK" in run_aig("verify", out).stdout


def test_pairs_are_aligned(built):
    out, _ = built
    pairs = sql_rows(out, """
        select pair_id, count(*) as n, count(distinct width) as w, count(distinct height) as h,
               count(distinct format) as f, count(distinct split) as s, count(distinct shard) as shards,
               list(label order by label) as labels, min(width) as width, min(height) as height,
               min(source_id) as src, min(generator) as gen
        from samples where task = 'pixel' group by pair_id order by pair_id""")
    assert len(pairs) == 12
    reals = {r["key"]: r for r in sql_rows(out, "select key, split from samples where stage = 'ingest'")}
    for p in pairs:
        assert p["labels"] == ["fake", "real"] and p["n"] == 2
        assert p["w"] == p["h"] == p["f"] == p["s"] == p["shards"] == 1
        factor = 8 if p["gen"].endswith("inpaint") else 2  # the tiny VAE downsamples by 2; inpainting needs 8
        assert p["width"] % factor == 0 and p["height"] % factor == 0
    splits = sql_rows(out, "select s.key, s.split, r.split as real_split from samples s join samples r "
                           "on r.key = s.source_id where s.stage != 'ingest'")
    assert len(splits) == 30 and all(r["split"] == r["real_split"] for r in splits)
    assert set(reals) == {p["src"] for p in pairs}


def test_provenance_is_complete(built):
    out, _ = built
    rows = sql_rows(out, "select generator_kind, model_id, seed, prompt, provenance from samples where label = 'fake'")
    kinds = {r["generator_kind"] for r in rows}
    assert kinds == {"autoencoder", "inpaint", "text-to-image"}
    for r in rows:
        prov = json.loads(r["provenance"])
        assert r["model_id"] and r["seed"] is not None and prov["kind"] == r["generator_kind"]
        for field in ("model_id", "dtype", "device", "threads", "diffusers", "torch", "batch", "seed"):
            assert prov.get(field) is not None, (field, prov)
        if r["generator_kind"] == "autoencoder":
            assert prov["latent"] == "sample" and prov["class"] == "AutoencoderKL" and prov["source_key"]
        if r["generator_kind"] == "text-to-image":
            assert r["prompt"] == prov["prompt"] and r["prompt"].startswith("a ")
            assert prov["source_key"] or r["prompt"] in ("a red bicycle leaning on a wall", "a bowl of soup")
            for field in ("pipeline", "scheduler", "steps", "guidance", "width", "height", "safety_checker"):
                assert prov[field] is not None
            assert prov["safety_checker"] == "off" and prov["pipeline"] == "StableDiffusionPipeline"
    by_sql = sql_rows(out, "select count(*) as n from samples where provenance->>'kind' = 'autoencoder' "
                           "and cast(provenance->>'steps' as int) is null")
    assert by_sql == [{"n": 6}]


def test_text_to_image_fakes_take_their_source_aspect(built):
    out, _ = built
    rows = sql_rows(out, """
        select s.width, s.height, r.width as rw, r.height as rh, s.provenance->>'aspect' as aspect
        from samples s left join samples r on r.key = s.provenance->>'source_key'
        where s.generator_kind = 'text-to-image' order by s.key""")
    sourced = [r for r in rows if r["rw"]]
    assert len(sourced) == 6 and {(r["rw"], r["rh"]) for r in sourced} == {(90, 70)}  # reals at native resolution
    # 90:70 at --t2i-size 32's area (32 x 32 pixels), sides multiples of 8 (what diffusers' pipelines accept)
    assert {(r["width"], r["height"], r["aspect"]) for r in sourced} == {(40, 32, "source")}
    assert [(r["width"], r["height"]) for r in rows if not r["rw"]] == [(32, 32)] * 2  # prompts: no source image


@pytest.mark.slow
def test_regenerate_is_exact(built):
    out, _ = built
    for kind in ("autoencoder", "text-to-image", "inpaint"):
        key = sql_rows(out, f"select key from samples where generator_kind = '{kind}' order by key limit 1")[0]["key"]
        proc = run_aig("regenerate", "-d", out, key)
        assert "identical to the stored sample" in proc.stdout, (kind, proc.stdout)
    real = sql_rows(out, "select key from samples where stage = 'ingest' limit 1")[0]["key"]
    proc = run_aig("regenerate", "-d", out, real, check=False)
    assert proc.returncode == 2 and "not generated" in proc.stderr


def test_bad_model_id_fails_fast_and_builds_nothing(tmp_path, models):
    start = time.time()
    proc = run_aig("build-data", "-o", tmp_path / "ds", "--autoencoder", "nobody/no-such-vae", check=False)
    assert proc.returncode == 2 and time.time() - start < 60
    assert "cannot load autoencoder 'nobody/no-such-vae'" in proc.stderr and "local folder" in proc.stderr
    assert not (tmp_path / "ds" / "manifest").exists()


@pytest.mark.slow  # auto pairs from JPEG sources: tests/test_jpeg_sources.py
def test_jpeg_matched_pairs(models, tmp_path):
    out = tmp_path / "ds"
    run_aig("build-data", "-o", out, "--input-list", make_inputs(tmp_path, n=1), "--size", 64, "--executor", "local",
            "--autoencoder", models["vae"], "--pair-format", "jpeg-matched", "--stages", "ingest,reconstruct")
    rows = sql_rows(out, "select r.source_format, r.source_quality, s.format, s.label, "
                         "s.provenance->>'jpeg_quality' as q from samples s join samples r on r.key = s.source_id "
                         "where s.task = 'pixel' order by r.source_format, s.label")
    jpeg = [r for r in rows if r["source_format"] == "JPEG"]
    png = [r for r in rows if r["source_format"] == "PNG"]
    assert [r["format"] for r in jpeg] == ["jpg", "jpg"] and all(int(r["q"]) == r["source_quality"] for r in jpeg)
    assert [r["format"] for r in png] == ["png", "png"]


def test_oom_batches_are_split_and_recorded(models, tmp_path, monkeypatch):
    import torch

    from aig import build_data
    from aig.generators import autoencoder
    from aig.pipeline.config import load_config

    real = autoencoder.reconstruct

    def small_memory(ae, images, seeds, latent, tile=False, **kw):
        if images.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(ae, images, seeds, latent, tile, **kw)

    monkeypatch.setattr(autoencoder, "reconstruct", small_memory)
    make_images(tmp_path / "in", 4, size=(64, 64))
    cfg = load_config(None, {"output": str(tmp_path / "ds"), "inputs.folders": [str(tmp_path / "in")],
                             "stages": ["ingest", "reconstruct"], "runner.executor": "local",
                             "reconstruct.autoencoders": [str(models["vae"])], "reconstruct.batch_size": 4})
    report = build_data(cfg)
    assert report.by_stage["reconstruct"] == (8, 0)
    splits = sql_rows(tmp_path / "ds", "select cast(provenance->>'oom_splits' as int) as s from samples "
                                       "where generator_kind = 'autoencoder'")
    assert sorted(r["s"] for r in splits) == [2, 2, 2, 2]


@pytest.mark.slow
def test_resume_mid_generation(models, tmp_path):
    from conftest import start_and_kill

    make_images(tmp_path / "in", 24, size=(64, 64))
    args = ["build-data", "--input-dir", tmp_path / "in", "--samples-per-shard", 2, "--executor", "local",
            "--autoencoder", models["vae"], "--stages", "ingest,reconstruct"]
    clean = tmp_path / "clean"
    run_aig(*args, "-o", clean)
    killed = tmp_path / "killed"
    n_done = start_and_kill([*args, "-o", killed], killed / "manifest" / "done", "pixel-*.json", 2)
    assert 2 <= n_done < 12
    run_aig(*args, "-o", killed)
    assert tar_digests(killed) == tar_digests(clean)
    assert "OK" in run_aig("verify", killed).stdout


def test_overlapping_chunks_of_a_gpu_actor_write_what_one_at_a_time_writes(models, tmp_path):
    """A GPU actor runs `chunks_in_flight` chunks at once in threads (model use under a lock): the same worker
    must write the same bytes as when it runs them one after another."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from aig import build_data
    from aig.generators.reconstruct import AutoencoderSpec, ReconstructWorker
    from aig.pipeline.config import ReconstructConfig, ShardConfig, load_config
    from aig.pipeline.model_stages import real_chunks

    make_images(tmp_path / "in", 6, size=(64, 64), fmt="PNG")
    base = tmp_path / "base"
    build_data(load_config(None, {"output": str(base), "inputs.folders": [str(tmp_path / "in")],
                                  "stages": ["ingest"], "runner.executor": "local", "shards.samples_per_shard": 3}))
    chunks = real_chunks(base)
    assert len(chunks) == 2
    worker = ReconstructWorker(AutoencoderSpec(name="tiny", model=str(models["vae"])),
                               ReconstructConfig(batch_size=2), threads=1)
    assert worker.chunks_in_flight == 2
    digests = {}
    for mode in ("one-at-a-time", "overlapping"):
        root = tmp_path / mode
        shutil.copytree(base, root)

        def run(item, root=root):
            return worker.run_chunk(str(root), item[0], item[1], ShardConfig(samples_per_shard=3), "run-0002")

        if mode == "overlapping":
            with ThreadPoolExecutor(worker.chunks_in_flight) as pool:
                results = list(pool.map(run, chunks.items()))
        else:
            results = [run(item) for item in chunks.items()]
        assert [(r["samples"], r["failures"]) for r in results] == [(6, 0), (6, 0)]
        assert all(r["timers"]["autoencoder"] > 0 for r in results)
        digests[mode] = {k: v for k, v in tar_digests(root).items() if "/real/" not in k}
    assert len(digests["overlapping"]) >= 2 and digests["overlapping"] == digests["one-at-a-time"]
