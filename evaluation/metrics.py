"""Detection metrics and branch fusion. Label 1 = fake, 0 = real; scores are P(fake)."""

from __future__ import annotations

import math

import numpy as np



def binary_metrics(labels, scores, preds) -> dict:
    """Real accuracy, fake accuracy, balanced accuracy (mean of the two), AP and AUROC.

    A metric a subset cannot define (no reals, no fakes, one class for AP/AUROC) is NaN, never a guess.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    p = np.asarray(preds, dtype=int)
    if not (len(y) == len(s) == len(p)):
        raise ValueError(f"labels, scores and preds differ in length: {len(y)}, {len(s)}, {len(p)}")
    n_real, n_fake = int((y == 0).sum()), int((y == 1).sum())
    real_acc = float((p[y == 0] == 0).mean()) if n_real else math.nan
    fake_acc = float((p[y == 1] == 1).mean()) if n_fake else math.nan
    both = n_real > 0 and n_fake > 0
    return {
        "n_real": n_real,
        "n_fake": n_fake,
        "real_acc": real_acc,
        "fake_acc": fake_acc,
        "balanced_acc": (real_acc + fake_acc) / 2 if both else math.nan,
        "ap": float(average_precision_score(y, s)) if both else math.nan,
        "auroc": float(roc_auc_score(y, s)) if both else math.nan,
    }


def or_fusion(pixel_prob, vlm_fake, tau: float = 0.5):
    """AlignGemini's rule: fake if the pixel probability exceeds tau OR the VLM says fake.

    Returns (fused score, fused verdict). The fused score is 1 where the VLM says fake, else the pixel
    probability, so `score > tau` is exactly the OR verdict (for tau < 1) and AP/AUROC stay defined.
    """
    p = np.asarray(pixel_prob, dtype=float)
    v = np.asarray(vlm_fake, dtype=bool)
    score = np.where(v, 1.0, p)
    return score, (p > tau) | v


def mean_fusion(pixel_prob, vlm_prob, weight: float = 0.5, tau: float = 0.5):
    """Score-level fusion: weight * pixel + (1 - weight) * VLM fake probability, fake above tau."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight {weight} is outside [0, 1]")
    score = weight * np.asarray(pixel_prob, dtype=float) + (1 - weight) * np.asarray(vlm_prob, dtype=float)
    return score, score > tau


def fired(pixel_fake: bool, vlm_fake: bool) -> str:
    """Which branch made an OR-fused verdict fake: pixel, semantic, both or none."""
    return {(True, True): "both", (True, False): "pixel", (False, True): "semantic"}.get(
        (bool(pixel_fake), bool(vlm_fake)), "none")


def detector_columns(det: str, tau: float):
    """(score of a row, prediction of a row) for a detector."""
    if det == "pixel":
        return (lambda r: r["pixel_prob"]), (lambda r: r["pixel_prob"] > tau)
    if det == "semantic":
        return (lambda r: r["semantic_score"]), (lambda r: r["semantic_verdict"] == "fake")
    return (lambda r: r["fused_score"]), (lambda r: r["fused_pred"] == "fake")


def fmt_pct(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def nanmean(vals) -> float:
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan
