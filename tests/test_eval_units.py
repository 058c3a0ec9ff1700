"""Evaluation logic without models: metrics by hand, OR fusion truth table, benchmark layouts, audit scoring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aig.evaluation import folders
from aig.evaluation.audit import audit_rows, one_feature_auroc
from aig.evaluation.metrics import binary_metrics, fired, mean_fusion, or_fusion


def test_metrics_hand_computed():
    # scores desc: 0.9 fake, 0.6 real, 0.4 fake, 0.1 real; preds at 0.5 -> one error per class
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], [0, 1, 0, 1])
    assert (m["n_real"], m["n_fake"]) == (2, 2)
    assert m["real_acc"] == 0.5 and m["fake_acc"] == 0.5 and m["balanced_acc"] == 0.5
    assert m["auroc"] == pytest.approx(3 / 4)  # 3 of 4 (fake, real) pairs ordered right
    assert m["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # precision 1 at recall .5, 2/3 at recall 1


def test_metrics_unbalanced_and_one_class():
    m = binary_metrics([0, 0, 0, 1], [0.2, 0.3, 0.7, 0.8], [0, 0, 1, 1])
    assert m["real_acc"] == pytest.approx(2 / 3) and m["fake_acc"] == 1.0
    assert m["balanced_acc"] == pytest.approx((2 / 3 + 1) / 2) and m["auroc"] == 1.0 and m["ap"] == 1.0
    only_fakes = binary_metrics([1, 1], [0.9, 0.2], [1, 0])
    assert only_fakes["fake_acc"] == 0.5 and math.isnan(only_fakes["real_acc"])
    assert math.isnan(only_fakes["balanced_acc"]) and math.isnan(only_fakes["auroc"])
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.1], [0, 1])


@pytest.mark.parametrize("pixel, vlm, expected, branch", [
    (0.2, False, False, "none"),
    (0.2, True, True, "semantic"),
    (0.8, False, True, "pixel"),
    (0.8, True, True, "both"),
    (0.5, False, False, "none"),  # strictly above tau
])
def test_or_fusion_truth_table(pixel, vlm, expected, branch):
    score, verdict = or_fusion([pixel], [vlm], tau=0.5)
    assert bool(verdict[0]) is expected
    assert bool(score[0] > 0.5) is expected
    assert fired(pixel > 0.5, vlm) == branch


def test_or_fusion_tau_and_mean_fusion():
    _, v = or_fusion([0.3, 0.3], [False, True], tau=0.2)
    assert v.tolist() == [True, True]
    s, v = mean_fusion([0.8, 0.2, 0.4], [1.0, 0.0, 1.0], weight=0.5, tau=0.5)
    assert s.tolist() == pytest.approx([0.9, 0.1, 0.7]) and v.tolist() == [True, False, True]
    with pytest.raises(ValueError):
        mean_fusion([0.1], [0.1], weight=1.5)


def _touch(root, rel):
    from PIL import Image

    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(p)
    return p


@pytest.mark.parametrize("layout, expected", [
    ({"test/0_real/a.png": (0, "all"), "test/1_fake/b.png": (1, "all")}, "chameleon"),
    ({"test/reddit/REAL/a.jpg": (0, "reddit"), "test/reddit/Fake/b.jpg": (1, "reddit"),
      "test/twitter/real/c.png": (0, "twitter")}, "wildrf"),
    ({"sdv4/val/nature/a.png": (0, "sdv4"), "sdv4/val/ai/b.png": (1, "sdv4"),
      "midjourney/val/ai/c.png": (1, "midjourney")}, "genimage"),
    ({"flux/0_real/a.png": (0, "flux"), "flux/1_fake/b.png": (1, "flux"), "x/y/1_FAKE/c.webp": (1, "x/y")}, "aigi-now"),
])
def test_folder_layouts(tmp_path, layout, expected):
    root = tmp_path / expected
    for rel in layout:
        _touch(root, rel)
    _touch(root, "README/notes.png")  # no label folder: reported, not scored
    items, unlabelled = folders.load_benchmark(str(root))
    got = {str(__import__("pathlib").Path(i.path).relative_to(root)): (i.label, i.generator) for i in items}
    assert got == layout and {i.benchmark for i in items} == {expected}
    assert unlabelled == [str(root / "README/notes.png")]


def test_list_file_and_errors(tmp_path):
    _touch(tmp_path, "imgs/a.png")
    (tmp_path / "bench.csv").write_text("path,label,generator,subset\nimgs/a.png,fake,sd,Semantic\n/abs/b.png,0,,\n")
    items, _ = folders.load_benchmark(f"mine={tmp_path / 'bench.csv'}")
    assert [(i.path, i.label, i.generator, i.benchmark, i.subset) for i in items] == [
        (str(tmp_path / "imgs/a.png"), 1, "sd", "mine", "semantic"), ("/abs/b.png", 0, "all", "mine", None)]
    (tmp_path / "bad.csv").write_text("path,label\na.png,maybe\n")
    with pytest.raises(folders.BenchmarkError, match="row 2"):
        folders.load_benchmark(str(tmp_path / "bad.csv"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(folders.BenchmarkError, match="0_real/1_fake"):
        folders.load_benchmark(str(tmp_path / "empty"))


def _row(task, label, **kw):
    base = {"task": task, "split": "train", "label": label, "format": "PNG", "mode": "RGB", "exif": "no",
            "jpeg_quality": None, "input_quality": None, "width": 64, "height": 48, "aspect": 1.3333,
            "file_size": 1000}
    return {**base, **kw}


def test_audit_flags_only_predictive_attributes():
    rows = [_row("semantic", "fake", file_size=900 + i) for i in range(4)]
    rows += [_row("both", "real", format="JPEG", jpeg_quality=90, file_size=1000 + i) for i in range(4)]
    res = audit_rows(rows, threshold=0.6)
    flagged = {f.attribute for f in res.shortcuts}
    assert flagged == {"format", "jpeg_quality"}
    size = next(f for f in res.scores if f.attribute == "file_size")
    assert size.auroc == 1.0 and not size.shortcut and size.note
    assert {(s["task"], s["label"]) for s in res.summary} == {("semantic", "fake"), ("semantic", "real")}
    assert one_feature_auroc([1, 2, 3, 4], [1, 1, 0, 0], False) == 1.0  # direction-free
    assert one_feature_auroc(["a", "a", "a", "a"], [1, 0, 1, 0], True) == 0.5


def test_audit_catches_all_square_fakes_that_aspect_alone_misses():
    reals = [_row("semantic", "real", width=w, height=h, aspect=round(w / h, 4), square="no")
             for w, h in ((640, 480), (480, 640), (500, 520), (520, 500), (700, 400), (400, 700))]
    fakes = [_row("semantic", "fake", width=512, height=512, aspect=1.0, square="yes") for _ in range(6)]
    res = audit_rows(reals + fakes, threshold=0.6)
    by = {f.attribute: f for f in res.scores}
    assert by["aspect"].auroc < 0.6 and not by["aspect"].shortcut  # reals on both sides of 1.0
    assert by["square"].auroc == 1.0 and by["square"].shortcut


def test_blockiness_sees_a_jpeg_grid_in_decoded_pixels():
    import io

    import numpy as np
    from PIL import Image

    from aig.evaluation.blockiness import blockiness, jpeg_trace

    rng = np.random.default_rng(0)
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((256, 192), Image.BICUBIC))
    img = Image.fromarray(np.clip(smooth + rng.normal(0, 4, smooth.shape), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    decoded = np.asarray(Image.open(buf).convert("RGB"))
    plain, grid = blockiness(np.asarray(img)), blockiness(decoded)
    shifted = blockiness(decoded[3:, 5:])  # a crop off the grid: the grid's phase is found, not assumed
    assert plain < 0.1 <= min(grid, shifted), (plain, grid, shifted)
    assert math.isnan(blockiness(decoded[:64, :64]))  # too few blocks to tell
    assert jpeg_trace("PNG", grid) == "yes" and jpeg_trace("PNG", plain) == "no" and jpeg_trace("JPEG", plain) == "yes"


def test_sweep_perturbations():
    from PIL import Image

    from aig.evaluation.robustness import SWEEP, apply, check

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    sizes = {name: apply(img, name).size for name in SWEEP}
    assert sizes == {"jpeg95": (60, 40), "jpeg75": (60, 40), "jpeg50": (60, 40), "resize0.5": (30, 20),
                     "resize2": (120, 80), "crop0.75": (45, 30)}
    err = {q: np.abs(np.asarray(apply(img, f"jpeg{q}"), float) - np.asarray(img, float)).mean() for q in (95, 75, 50)}
    assert 0 < err[95] < err[75] < err[50]  # stronger compression, larger error
    crop = np.asarray(apply(img, "crop0.75"))
    assert (crop == np.asarray(img)[5:35, 7:52]).all()  # the centre, untouched
    assert apply(img, "none") is img
    for bad in ("jpeg0", "jpeg101", "resize0", "crop1.5", "blur3"):
        with pytest.raises(ValueError):
            check(bad)


def test_groups_pick_the_right_reals():
    from aig.evaluation.evaluate import groups

    def r(name, label, gen, subset=None):
        return {"item": name, "label": label, "generator": gen, "subset": subset}

    ds = [r("r1", "real", "vae", "pixel"), r("f1", "fake", "vae", "pixel"), r("r2", "real", "-", "semantic"),
          r("f2", "fake", "t2i", "semantic")]
    got = {(k, n): sorted(x["item"] for x in rows) for k, n, rows in groups(ds)}
    assert got == {("all", "all"): ["f1", "f2", "r1", "r2"], ("generator", "t2i"): ["f2", "r2"],
                   ("generator", "vae"): ["f1", "r1"], ("subset", "pixel"): ["f1", "r1"],
                   ("subset", "semantic"): ["f2", "r2"]}
    wild = [r("a", "real", "reddit"), r("b", "fake", "reddit"), r("c", "real", "twitter"), r("d", "fake", "x")]
    got = {(k, n): sorted(x["item"] for x in rows) for k, n, rows in groups(wild)}
    assert got == {("all", "all"): ["a", "b", "c", "d"], ("generator", "reddit"): ["a", "b"],
                   ("generator", "x"): ["a", "c", "d"]}
    chameleon = [r("a", "real", "all"), r("b", "fake", "all")]
    assert [(k, n) for k, n, _ in groups(chameleon)] == [("all", "all")]


def test_same_curve_as_names_the_curve_a_detector_repeats():
    from aig.evaluation.outputs import same_curve_as

    a, b = ([0, 0.5, 1], [0, 1, 1]), ([0, 1], [0, 1])
    assert same_curve_as({"pixel": a, "semantic": b, "fused": a}) == {"fused": "pixel"}
    assert same_curve_as({"pixel": a, "semantic": a, "fused": a}) == {"semantic": "pixel", "fused": "pixel"}
    assert same_curve_as({"pixel": a, "semantic": b}) == {}
