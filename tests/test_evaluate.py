"""Evaluation end to end through the CLI: audit, evaluate (+ sweep, benchmarks), predict, report in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import run_aig, sql_rows
from corpus import make_images

ALL_TEST = "[split]\ntrain = 0.0\nval = 0.0\ntest = 1.0\n"


def _inputs(folder, n, fmt="PNG"):
    imgs = make_images(folder / "imgs", n, size=(72, 56), fmt=fmt)
    (folder / "list.csv").write_text("path,caption\n" + "".join(f"imgs/{p.name},a photo number {i}\n"
                                                                for i, p in enumerate(imgs)))
    return folder / "list.csv"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A random-weight pixel export (aig.training.checkpoint's format) and a tiny random VLM."""
    import torch

    from aig.labeling.tiny_vlm import build_tiny_llava
    from aig.training.checkpoint import save_pixel_export
    from aig.training.models import create_backbone, normalisation

    base = tmp_path_factory.mktemp("eval-models")
    torch.manual_seed(0)
    net = create_backbone("aig_tinycnn", None)
    cfg = {"model": "aig_tinycnn", "crop_size": 32, "max_tiles": 4, **normalisation(net)}
    vlm = build_tiny_llava(base / "vlm")
    return {"vlm": vlm, "adapter": _lora_adapter(vlm, base / "adapter"), "pixel": save_pixel_export(base / "pixel", net, cfg)}


def _lora_adapter(vlm, out):
    """A peft LoRA adapter over the tiny VLM, saved with its processor (as `aig train --branch semantic` does)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = get_peft_model(AutoModelForImageTextToText.from_pretrained(vlm),
                           LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(vlm).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """Aligned pixel pairs (the pipeline's defaults, the trained embedded autoencoder: a random-weight one is
    flagged degenerate by the audit), every image in the test split."""
    base = tmp_path_factory.mktemp("eval-pairs")
    (base / "aig.toml").write_text(ALL_TEST)
    out = base / "ds"
    run_aig("build-data", "-c", base / "aig.toml", "-o", out, "--input-list", _inputs(base, 4), "--size", 64,
            "--executor", "local", "--stages", "ingest,reconstruct")
    return out


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A WildRF-style benchmark folder with one truncated file that must be reported and excluded."""
    root = tmp_path_factory.mktemp("bench") / "wild"
    make_images(root / "test" / "reddit" / "real", 2, size=(64, 64), fmt="JPEG", seed=3)
    make_images(root / "test" / "reddit" / "FAKE", 2, size=(64, 64), fmt="PNG", seed=4)
    make_images(root / "test" / "x" / "1_fake", 1, size=(64, 64), fmt="PNG", seed=5)
    good = next((root / "test" / "reddit" / "real").iterdir()).read_bytes()
    (root / "test" / "reddit" / "real" / "broken.jpg").write_bytes(good[: len(good) // 3])
    return root


def test_audit_passes_aligned_pairs(pairs):
    proc = run_aig("audit", pairs, "--strict")
    assert "no shortcut" in proc.stdout and "| pixel | format | 0.500 | ok |" in proc.stdout
    data = json.loads(run_aig("audit", pairs, "--json").stdout)
    assert data["shortcuts"] == [] and {s["label"] for s in data["summary"]} == {"real", "fake"}


def _planted(root, n=6):
    """A constructed pixel-pair dataset whose reals are JPEG (q90) and reconstructions PNG: a format shortcut."""
    import io

    from PIL import Image

    from aig.manifests.catalog import refresh_catalog
    from aig.pipeline.chunks import sample_outcome, write_chunk
    from aig.pipeline.config import ShardConfig

    outcomes = []
    for i, path in enumerate(make_images(root / "src", n, size=(64, 48), fmt="PNG")):
        img = Image.open(path).convert("RGB")
        for label, fmt in (("real", "JPEG"), ("fake", "PNG")):
            buf = io.BytesIO()
            img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            outcomes.append(sample_outcome(f"s{i}-{label}", buf.getvalue(), "jpg" if fmt == "JPEG" else "png",
                                           run_id="run-0001", stage="reconstruct", task="pixel", label=label,
                                           split=("train", "test")[i % 2], pair_id=f"s{i}", source_id=f"s{i}",
                                           generator="planted", width=64, height=48))
    write_chunk(root, "pixel-planted", 0, outcomes, ShardConfig(), "reconstruct", "run-0001")
    refresh_catalog(root)
    return root


def test_audit_catches_planted_format_shortcut(tmp_path):
    ds = _planted(tmp_path / "ds")
    proc = run_aig("audit", ds, "--strict", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SHORTCUT: pixel: 'format' alone predicts the label (AUROC 1.000 > 0.6)" in proc.stdout
    assert "| pixel | test | real | 3 | JPEG 3 | 90–90 |" in proc.stdout
    data = json.loads(run_aig("audit", ds, "--json", "--threshold", 0.9).stdout)
    # size and mode are aligned; the reals' JPEG grid is seen in their pixels too
    assert {f["attribute"] for f in data["shortcuts"]} == {"format", "jpeg_quality", "jpeg_trace"}


@pytest.mark.slow
def test_audit_catches_jpeg_reals_vs_png_fakes(tmp_path):
    """Reals stored as JPEG (--image-format jpeg), text-to-image fakes as PNG: the classic format shortcut."""
    from aig.generators.tiny_models import build_tiny_sd

    out = tmp_path / "ds"
    run_aig("build-data", "-o", out, "--input-list", _inputs(tmp_path, 4), "--size", 64, "--executor", "local",
            "--image-format", "jpeg", "--stages", "ingest,generate", "--t2i-model", build_tiny_sd(tmp_path / "sd"),
            "--t2i-size", 32, "--t2i-steps", 1)
    proc = run_aig("audit", out, "--strict", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "SHORTCUT: semantic: 'format' alone predicts the label (AUROC 1.000" in proc.stdout
    flagged = {f["attribute"] for f in json.loads(run_aig("audit", out, "--json").stdout)["shortcuts"]}
    assert {"format", "jpeg_quality", "width", "height"} <= flagged  # 72x56 crops vs 32x32 fakes
    assert run_aig("audit", out).returncode == 0  # without --strict it only reports


def test_evaluate_fused_sweep_and_benchmark(pairs, models, bench):
    proc = run_aig("evaluate", "-d", pairs, "--pixel", models["pixel"], "--semantic-model", models["vlm"],
                   "--max-new-tokens", 24, "--constrained", "--sweep", "--benchmark", f"wildrf={bench}")
    out = proc.stdout
    assert "## Balanced accuracy" in out and "| detector | ds:test | wildrf | mean |" in out
    for det in ("pixel", "semantic", "fused"):
        assert f"| {det} |" in out and f"| {det} @ jpeg50 |" in out
    assert "broken.jpg" in out and "1 unreadable image(s) excluded" in proc.stderr
    runs = sql_rows(pairs, "select * from eval_runs")
    assert len(runs) == 1 and runs[0]["n_unreadable"] == 1 and runs[0]["n_images"] == 12 + 6  # 4 reals, 4 pairs; 6 files
    scores = sql_rows(pairs, "select * from eval_scores")
    assert len(scores) == 18 * 7
    assert {s["perturbation"] for s in scores} == {"none", "jpeg95", "jpeg75", "jpeg50", "resize0.5", "resize2", "crop0.75"}
    bad = [s for s in scores if s["status"] != "ok"]
    assert len(bad) == 7 and all(s["item"].endswith("broken.jpg") and s["pixel_prob"] is None for s in bad)
    for s in scores:
        if s["status"] == "ok":  # the OR rule, row by row
            assert (s["fused_pred"] == "fake") == (s["pixel_prob"] > 0.5 or s["semantic_verdict"] == "fake")
            assert 0.0 <= s["pixel_prob"] <= 1.0
    # metrics recomputed by hand from the stored per-image rows
    res = sql_rows(pairs, "select * from eval_results where group_kind = 'all' and detector = 'fused' "
                          "and perturbation = 'none' and benchmark = 'wildrf'")[0]
    ok = [s for s in scores if s["benchmark"] == "wildrf" and s["perturbation"] == "none" and s["status"] == "ok"]
    reals = [s for s in ok if s["label"] == "real"]
    fakes = [s for s in ok if s["label"] == "fake"]
    assert (res["n_real"], res["n_fake"]) == (len(reals), len(fakes)) == (2, 3)
    racc = sum(s["fused_pred"] == "real" for s in reals) / 2
    facc = sum(s["fused_pred"] == "fake" for s in fakes) / 3
    assert res["balanced_acc"] == pytest.approx((racc + facc) / 2)
    gens = {r["group_name"] for r in sql_rows(pairs, "select distinct group_name from eval_results "
                                                     "where group_kind = 'generator' and benchmark = 'wildrf'")}
    assert gens == {"reddit", "x"}
    subsets = sql_rows(pairs, "select distinct group_name from eval_results where group_kind = 'subset'")
    assert subsets == [{"group_name": "pixel"}]
    folder = pairs / "eval" / "eval-0001"
    for name in ("results.md", "roc-ds_test.png", "hist-wildrf.png"):
        assert (folder / name).stat().st_size > 0


def test_evaluate_bad_input_is_named(pairs, models, tmp_path):
    proc = run_aig("evaluate", "-d", pairs, "--pixel", tmp_path / "nope", check=False)
    assert proc.returncode == 2 and "nope" in proc.stderr
    proc = run_aig("evaluate", "-d", pairs, check=False)
    assert proc.returncode == 2 and "--pixel" in proc.stderr
    proc = run_aig("evaluate", "-d", pairs, "--pixel", models["pixel"], "--perturb", "blur3", check=False)
    assert proc.returncode == 2 and "blur3" in proc.stderr
    proc = run_aig("evaluate", "-d", pairs, "--pixel", models["pixel"], "--benchmark", tmp_path, check=False)
    assert proc.returncode == 2 and "0_real/1_fake" in proc.stderr


def test_predict_json(models, bench):
    real = sorted((bench / "test" / "reddit" / "real").glob("img_*"))[0]
    broken = bench / "test" / "reddit" / "real" / "broken.jpg"
    proc = run_aig("predict", real, bench / "test" / "x", broken, "--pixel", models["pixel"],
                   "--semantic-adapter", models["adapter"], "--max-new-tokens", 24, "--constrained", "--json",
                   check=False)
    assert proc.returncode == 1 and "1 of 3 image(s) could not be read" in proc.stderr
    out = json.loads(proc.stdout)
    assert [r["path"] for r in out] == [str(real), str(next((bench / "test" / "x" / "1_fake").iterdir())), str(broken)]
    for r in out[:2]:
        assert r["verdict"] in ("real", "fake") and 0 <= r["pixel_prob"] <= 1 and r["error"] is None
        assert r["semantic_verdict"] in ("real", "fake") and r["semantic_text"].startswith('{"verdict":')
        assert 0 < r["semantic_prob"] < 1
        assert r["fired"] in ("pixel", "semantic", "both", "none") and isinstance(r["inconsistencies"], list)
        assert (r["verdict"] == "fake") == (r["fired"] != "none")
        assert r["verdict"] == ("fake" if r["pixel_prob"] > 0.5 or r["semantic_verdict"] == "fake" else "real")
    assert out[2]["error"].startswith("unreadable") and out[2]["verdict"] is None
    text = run_aig("predict", real, "--pixel", models["pixel"], "--tau", 0.0).stdout
    assert text.startswith(f"{real}: FAKE  pixel ") and "fired: pixel" in text


def chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.skip("chromium is not installed and `make test` could not install it (apt-get install chromium)")
    return exe


# A phone-width viewport (headless Chromium's windows are at least 500 px wide): the page in a 390 px iframe,
# a copy of it reporting its scroll width and viewport width to the parent page, which records them.
OVERFLOW_CHECK = """<script>window.addEventListener('load', function () { setTimeout(function () {
  var d = document.documentElement;
  parent.postMessage({scroll: d.scrollWidth, client: d.clientWidth}, '*');
}, 0); });</script>"""
PHONE = """<!doctype html><html><body style="margin:0"><iframe src="{src}" style="width:390px;height:800px;border:0">
</iframe><script>window.addEventListener('message', function (e) {{
  document.body.setAttribute('data-scroll-width', e.data.scroll);
  document.body.setAttribute('data-client-width', e.data.client);
}});</script></body></html>"""


def phone_width(exe, page, tmp_path) -> tuple[int, int]:
    """(document scroll width, viewport width) of the page laid out 390 px wide."""
    import re

    probe = page.with_name("probe-" + page.name)
    probe.write_text(page.read_text().replace("</body>", OVERFLOW_CHECK + "</body>"))
    frame = page.with_name("phone.html")
    frame.write_text(PHONE.format(src=probe.name))
    m = re.search(r'data-scroll-width="(\d+)" data-client-width="(\d+)"', render(exe, frame, tmp_path))
    assert m, "the overflow probe did not report"
    return int(m.group(1)), int(m.group(2))


def render(exe, page, tmp_path) -> str:
    proc = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                           f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000", "--dump-dom",
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _label_one_fake(ds, annotator):
    """An accepted semantic label with one named inconsistency, as `aig label-semantic` writes them."""
    from aig.manifests.schema import SEMANTIC_INCONSISTENCIES, SEMANTIC_LABELS
    from aig.manifests.catalog import refresh_catalog
    from aig.manifests.schema import parquet_bytes, to_table

    key = sql_rows(ds, "select key from samples where label = 'fake' order by key limit 1")[0]["key"]
    for table, cols, row in (
            ("semantic_labels", SEMANTIC_LABELS, {"key": key, "label": "fake", "decision": "accepted", "verdict": "inconsistent",
                                                  "annotator": f"transformers:{annotator}"}),
            ("semantic_inconsistencies", SEMANTIC_INCONSISTENCIES,
             {"key": key, "label": "fake", "decision": "accepted", "idx": 0, "category": "anatomy",
              "description": "the hand has six fingers", "confidence": 0.9})):
        (ds / "manifest" / table).mkdir(parents=True, exist_ok=True)
        (ds / "manifest" / table / "test.parquet").write_bytes(parquet_bytes(to_table(cols, [row])))
    refresh_catalog(ds)


def test_python_api_returns_the_commands_reports(pairs, models, tmp_path):
    """aig.evaluate / aig.audit build the commands' options and return their reports; bad input raises AigError."""
    import shutil

    import aig

    ds = tmp_path / "ds"
    shutil.copytree(pairs, ds)
    with pytest.raises(aig.AigError, match="nothing to evaluate: pass --pixel"):
        aig.evaluate(ds)
    with pytest.raises(aig.AigError, match=r"--threshold 0.2 must be in \[0.5, 1\)"):
        aig.audit(ds, threshold=0.2)
    assert not aig.audit(ds).flagged
    earlier = sql_rows(ds, "select count(*) as n from eval_runs")[0]["n"]  # other tests may have evaluated `pairs`
    report = aig.evaluate(ds, pixel=str(models["pixel"]), perturbations=("none", "jpeg75"), log=lambda m: None)
    eval_id = f"eval-{earlier + 1:04d}"
    assert report.eval_id == eval_id and len(report.scores) == 12 * 2
    assert report.lines()[1] == f"evaluation {eval_id}: 24 scores, {len(report.results)} result rows"
    assert sql_rows(ds, "select count(*) as n from eval_scores where perturbation = 'jpeg75' "
                        f"and eval_id = '{eval_id}'") == [{"n": 12}]


def test_report_renders_in_chromium(pairs, models, tmp_path):
    import re

    exe = chromium()
    if not sql_rows(pairs, "select count(*) as n from eval_runs")[0]["n"]:
        run_aig("evaluate", "-d", pairs, "--pixel", models["pixel"])
    _label_one_fake(pairs, models["vlm"])  # the tiny stand-in VLM: the page must say its labels mean nothing
    proc = run_aig("report", pairs, "-o", tmp_path / "r" / "report.html", "--pairs", 3)
    page = tmp_path / "r" / "report.html"
    assert str(page.resolve()) in proc.stdout
    dom = render(exe, page, tmp_path)
    m = re.search(r'<body data-images="(\d+)" data-broken="(\d+)"', dom)
    assert m, dom[-3000:]
    n_images, broken = int(m.group(1)), int(m.group(2))
    assert broken == 0 and n_images >= 3 * 3 + 1 + 2  # 3 pairs x (real, recon, diff) + a semantic fake + ROC + hist
    for heading in ("Counts", "Provenance", "Pixel pairs", "Semantic fakes", "Shortcut audit", "Evaluation"):
        assert f"<h2>{heading}" in dom
    assert "<li><b>anatomy</b>: the hand has six fingers (0.90)</li>" in dom  # from semantic_inconsistencies
    assert "Balanced accuracy" in dom and "no shortcut" in dom
    assert "failed to display</p>" not in dom and "rendered " not in dom  # no test text on the page
    assert f"<h1>aig report: {pairs.name}</h1>" in dom and str(pairs.resolve()) not in dom.split("<h2>")[0]
    assert "untrained random-weight stand-in annotator" in dom and "these labels carry no meaning" in dom
    # a phone-sized viewport: nothing wider than the screen
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in dom
    scroll, client = phone_width(exe, page, tmp_path)
    assert client == 390 and scroll <= client, (scroll, client)
