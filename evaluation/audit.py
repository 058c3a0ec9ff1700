"""Shortcut audit: per split and class, the container facts a detector could learn instead of the artifact.

Each attribute is scored by a one-feature classifier: AUROC of the attribute's value (numeric) or of the
fake rate of its category (categorical), direction-free (max(a, 1 - a)). Above the threshold it predicts
the label on its own: a shortcut. File size follows image content for a given format (reconstructions
are smoother, so smaller PNGs), so it is reported and noted, not counted as a shortcut. So is the strength
of the JPEG grid in the decoded pixels (`blockiness`, aig.evaluation.blockiness); its presence counts
(`jpeg_trace`: the stored file is a JPEG or its pixels carry a grid), so reals that keep their source's
JPEG grid while their reconstructions lose it are a shortcut even when both are stored as PNG.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .options import AuditOptions

NUMERIC = ("jpeg_quality", "input_quality", "width", "height", "aspect", "blockiness", "file_size")
CATEGORICAL = ("format", "mode", "exif", "square", "jpeg_trace")
CONTENT_DEPENDENT = {"file_size": "content-dependent (smoother images compress smaller): not counted as a shortcut",
                     "blockiness": "its strength follows content: not counted (jpeg_trace, its presence, is)"}
# Median reconstruction PSNR (dB) below which a pixel-pair generator is degenerate: real autoencoders
# reconstruct photos at 25-35 dB; a flat grey or black output scores about 5-12 dB.
PSNR_FLOOR = 15.0


@dataclass
class Finding:
    task: str
    attribute: str
    auroc: float
    shortcut: bool  # above threshold and not content-dependent
    note: str = ""


@dataclass
class AuditResult:
    threshold: float
    summary: list[dict] = field(default_factory=list)  # per task, split, label: attribute summaries
    scores: list[Finding] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    degenerate: list[dict] = field(default_factory=list)  # generators with median recon_psnr below PSNR_FLOOR

    @property
    def shortcuts(self) -> list[Finding]:
        return [f for f in self.scores if f.shortcut]

    @property
    def flagged(self) -> bool:
        """A shortcut or a degenerate generator was found (`--strict` fails on it)."""
        return bool(self.shortcuts or self.degenerate)

    def to_json(self) -> str:
        return json.dumps({"threshold": self.threshold, "summary": self.summary, "scores": [asdict(f) for f in self.scores],
                           "shortcuts": [asdict(f) for f in self.shortcuts], "unreadable": self.unreadable,
                           "degenerate": self.degenerate}, indent=1)

    def lines(self) -> list[str]:
        out = [to_markdown(self), *(f"unreadable: {u}" for u in self.unreadable)]
        if not self.shortcuts:
            return out + [f"\nno shortcut: no attribute alone predicts the label above AUROC {self.threshold}"]
        return out + [""] + [f"SHORTCUT: {f.task}: '{f.attribute}' alone predicts the label (AUROC {f.auroc:.3f} > "
                             f"{self.threshold})" for f in self.shortcuts]


def image_features(data: bytes) -> dict:
    """Container facts from the header, and the blockiness of the decoded pixels."""
    import numpy as np
    from PIL import Image

    from aig.pipeline.jpeg_quality import estimate_quality

    from .blockiness import blockiness, jpeg_trace

    with Image.open(io.BytesIO(data)) as img:
        fmt = img.format or "?"
        w, h = img.size
        exif = bool(img.getexif()) or "exif" in img.info
        quality = estimate_quality(getattr(img, "quantization", None)) if fmt == "JPEG" else None
        mode = img.mode
        block = blockiness(np.asarray(img.convert("RGB")))
        return {"format": fmt, "mode": mode, "width": w, "height": h, "aspect": round(w / h, 4),
                "square": "yes" if w == h else "no", "blockiness": block, "jpeg_trace": jpeg_trace(fmt, block),
                "exif": "yes" if exif else "no", "jpeg_quality": quality, "file_size": len(data)}


def one_feature_auroc(values: list, labels: list[int], categorical: bool) -> float:
    """How well one attribute alone separates the classes (0.5 = not at all, 1 = perfectly)."""
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return math.nan
    if categorical:
        keys = ["<none>" if v is None else str(v) for v in values]
        rate = {}
        for k in set(keys):
            ys = [y for kk, y in zip(keys, labels) if kk == k]
            rate[k] = sum(ys) / len(ys)
        x = [rate[k] for k in keys]
    else:
        x = [-1.0 if v is None else float(v) for v in values]  # missing (e.g. not JPEG) is its own value
    a = float(roc_auc_score(labels, x))
    return max(a, 1.0 - a)


def audit_sets(rows: list[dict]) -> dict[str, list[dict]]:
    """Samples per training task; reals shared by both tasks (task 'both') join a task that has none."""
    tasks = sorted({r["task"] for r in rows} - {"both"})
    shared = [r for r in rows if r["task"] == "both"]
    out = {}
    for t in tasks:
        mine = [r for r in rows if r["task"] == t]
        if not any(r["label"] == "real" for r in mine):
            mine = mine + shared
        out[t] = mine
    if not tasks and shared:
        out["both"] = shared
    return out


def summarize(task: str, rows: list[dict]) -> list[dict]:
    out = []
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["split"], r["label"]), []).append(r)
    for (split, label), rs in sorted(groups.items()):
        def dist(a):
            counts: dict[str, int] = {}
            for r in rs:
                k = "-" if r.get(a) is None else str(r[a])
                counts[k] = counts.get(k, 0) + 1
            return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))

        def rng(a):
            vals = [r[a] for r in rs if r.get(a) is not None and r[a] == r[a]]  # not None, not NaN
            return f"{min(vals)}–{max(vals)}" if vals else "-"

        out.append({"task": task, "split": split, "label": label, "n": len(rs), "format": dist("format"),
                    "jpeg_quality": rng("jpeg_quality"), "input_quality": rng("input_quality"),
                    "width": rng("width"), "height": rng("height"), "aspect": rng("aspect"),
                    "square": dist("square"), "blockiness": rng("blockiness"), "jpeg_trace": dist("jpeg_trace"),
                    "exif": dist("exif"), "mode": dist("mode"),
                    "file_size_kb": f"{min(r['file_size'] for r in rs) / 1e3:.1f}–{max(r['file_size'] for r in rs) / 1e3:.1f}"})
    return out


def audit_rows(rows: list[dict], threshold: float = 0.6) -> AuditResult:
    """Rows carry task, split, label and the features of `image_features` plus input_quality."""
    result = AuditResult(threshold)
    for task, rs in audit_sets(rows).items():
        result.summary += summarize(task, rs)
        labels = [1 if r["label"] == "fake" else 0 for r in rs]
        for attr in CATEGORICAL + NUMERIC:
            if not any(attr in r for r in rs):
                continue
            values = [r.get(attr) for r in rs]
            values = [None if v != v else v for v in values]  # NaN (too small to measure) is missing
            a = one_feature_auroc(values, labels, attr in CATEGORICAL)
            if math.isnan(a):
                continue
            above = a > threshold
            note = CONTENT_DEPENDENT[attr] if above and attr in CONTENT_DEPENDENT else ""
            result.scores.append(Finding(task, attr, a, above and attr not in CONTENT_DEPENDENT, note))
    return result


def degenerate_generators(rows: list[dict], floor: float = PSNR_FLOOR) -> list[dict]:
    """Generators whose median reconstruction PSNR (samples' recon_psnr) is below `floor` dB."""
    import statistics

    by_gen: dict[str, list[float]] = {}
    for r in rows:
        if r.get("recon_psnr") is not None:
            by_gen.setdefault(r["generator"], []).append(r["recon_psnr"])
    out = []
    for gen, values in sorted(by_gen.items()):
        median = statistics.median(values)
        if median < floor:
            out.append({"generator": gen, "pairs": len(values), "median_psnr": round(median, 2), "floor": floor})
    return out


def audit_dataset(root, threshold: float = 0.6) -> AuditResult:
    from aig.pipeline.shards import read_member

    from .dataset_io import sample_rows

    rows, unreadable = [], []
    samples = sample_rows(root)
    for r in samples:
        try:
            feats = image_features(read_member(root, r))
        except Exception as e:
            unreadable.append(f"{r['key']}: {type(e).__name__}: {e}")
            continue
        rows.append({"key": r["key"], "task": r["task"], "split": r["split"], "label": r["label"],
                     "input_quality": r["input_quality"], **feats})
    result = audit_rows(rows, threshold)
    result.unreadable = unreadable
    result.degenerate = degenerate_generators(samples)
    return result


def run(options: AuditOptions) -> AuditResult:
    """`aig audit`: the shortcut audit of a dataset's samples."""
    options.check()
    return audit_dataset(Path(options.dataset), options.threshold)


def to_markdown(result: AuditResult) -> str:
    lines = ["| task | split | label | n | format | JPEG q (file) | JPEG q (input) | width | height | aspect | square "
             "| blockiness | JPEG trace | EXIF | mode | file size (kB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in result.summary:
        lines.append("| " + " | ".join(str(s[k]) for k in ("task", "split", "label", "n", "format", "jpeg_quality",
                     "input_quality", "width", "height", "aspect", "square", "blockiness", "jpeg_trace", "exif", "mode",
                     "file_size_kb")) + " |")
    lines += ["", f"One-feature AUROC (shortcut above {result.threshold}):", "",
              "| task | attribute | AUROC | verdict |", "|---|---|---|---|"]
    for f in result.scores:
        verdict = "SHORTCUT" if f.shortcut else (f"note: {f.note}" if f.note else "ok")
        lines.append(f"| {f.task} | {f.attribute} | {f.auroc:.3f} | {verdict} |")
    for d in result.degenerate:
        lines.append(f"\nDEGENERATE: generator '{d['generator']}': median reconstruction PSNR {d['median_psnr']} dB "
                     f"over {d['pairs']} pairs is below {d['floor']} dB (find them: recon_psnr in samples)")
    return "\n".join(lines)
