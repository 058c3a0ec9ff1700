"""Evaluation outputs: Parquet tables in the manifest, the paper-style Markdown tables, ROC and histogram PNGs."""

from __future__ import annotations

import re
from pathlib import Path

from .metrics import fmt_pct, nanmean


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + ["| " + " | ".join(r) + " |" for r in rows]


def _grid(results, detectors, perturbation, metric, columns, col_of) -> list[list[str]]:
    rows = []
    for det in detectors:
        cells = {col_of(r): r[metric] for r in results if r["detector"] == det and r["perturbation"] == perturbation}
        vals = [cells.get(c) for c in columns]
        rows.append([det] + [fmt_pct(v) for v in vals] + [fmt_pct(nanmean(vals))])
    return rows


def markdown_report(results: list[dict], detectors: list[str], unreadable, unlabelled, opts) -> str:
    """Benchmarks as columns, detectors as rows (like the paper), per metric; then generators, subsets, sweep."""
    overall = [r for r in results if r["group_kind"] == "all"]
    benches = sorted({r["benchmark"] for r in overall})
    fusion = "OR rule" if opts.fusion == "or" else f"mean fusion (pixel weight {opts.weight})"
    head = (f"Fused = {fusion}, pixel threshold tau = {opts.tau}." if "fused" in detectors else
            f"Detector: {detectors[0]}" + (f", threshold tau = {opts.tau}." if detectors[0] == "pixel" else "."))
    out = ["# Evaluation", "", f"{head} Values in %.", ""]
    for metric, title in (("balanced_acc", "Balanced accuracy"), ("real_acc", "Real accuracy"),
                          ("fake_acc", "Fake accuracy"), ("ap", "Average precision"), ("auroc", "AUROC")):
        out += [f"## {title}", ""]
        out += _table(["detector", *benches, "mean"],
                      _grid(overall, detectors, "none", metric, benches, lambda r: r["benchmark"]))
        out.append("")
    for kind, title in (("generator", "per generator"), ("subset", "per subset (semantic vs pixel)")):
        for b in benches:
            rs = [r for r in results if r["benchmark"] == b and r["group_kind"] == kind and r["perturbation"] == "none"]
            names = sorted({r["group_name"] for r in rs})
            if not names:
                continue
            out += [f"## Balanced accuracy {title}: {b}", ""]
            out += _table(["detector", *names, "mean"],
                          _grid(rs, detectors, "none", "balanced_acc", names, lambda r: r["group_name"]))
            out.append("")
    perts = [p for p in dict.fromkeys(r["perturbation"] for r in overall)]
    if len(perts) > 1:
        out += ["## Robustness: balanced accuracy after post-processing (both classes)", ""]
        rows = []
        for det in detectors:
            for p in perts:
                cells = {r["benchmark"]: r["balanced_acc"] for r in overall if r["detector"] == det and r["perturbation"] == p}
                vals = [cells.get(b) for b in benches]
                rows.append([f"{det} @ {p}"] + [fmt_pct(v) for v in vals] + [fmt_pct(nanmean(vals))])
        out += _table(["detector @ perturbation", *benches, "mean"], rows) + [""]
    counts = [r for r in overall if r["detector"] == detectors[0] and r["perturbation"] == "none"]
    out += ["## Images", ""] + _table(["benchmark", "real", "fake"],
                                      [[r["benchmark"], str(r["n_real"]), str(r["n_fake"])] for r in counts]) + [""]
    if unreadable:
        out += [f"## Unreadable ({len(unreadable)}, excluded from every metric)", ""]
        out += [f"- `{item}`: {err}" for item, err in unreadable] + [""]
    if unlabelled:
        out += [f"## Not in a label folder ({len(unlabelled)}, not scored)", ""] + [f"- `{p}`" for p in unlabelled] + [""]
    return "\n".join(out)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


# Each detector its own line style, marker and width, so identical curves stay visible on top of each other.
CURVE_STYLES = ({"linestyle": "-", "marker": "o", "linewidth": 3.0, "markersize": 7, "alpha": 0.55},
                {"linestyle": "--", "marker": "s", "linewidth": 2.0, "markersize": 5},
                {"linestyle": ":", "marker": "^", "linewidth": 1.5, "markersize": 4})


def same_curve_as(curves: dict[str, tuple[list, list]]) -> dict[str, str]:
    """detector -> the earlier detector whose ROC curve it repeats exactly (e.g. fused when the VLM never fires)."""
    out = {}
    names = list(curves)
    for i, det in enumerate(names):
        for prev in names[:i]:
            if curves[det] == curves[prev]:
                out[det] = out.get(prev, prev)
                break
    return out


def write_plots(folder: Path, score_rows: list[dict], detectors: list[str]) -> list[Path]:
    """Per benchmark (no perturbation): ROC curves of each detector, and score histograms per class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    from .metrics import detector_columns

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rows = [r for r in score_rows if r["perturbation"] == "none" and r["status"] == "ok"]
    for bench in sorted({r["benchmark"] for r in rows}):
        rs = [r for r in rows if r["benchmark"] == bench]
        y = [1 if r["label"] == "fake" else 0 for r in rs]
        fig, ax = plt.subplots(figsize=(4.5, 4.2))
        curves = {}
        if len(set(y)) == 2:
            for det in detectors:
                score, _ = detector_columns(det, 0.5)
                fpr, tpr, _ = roc_curve(y, [score(r) for r in rs])
                curves[det] = (list(fpr), list(tpr))
        same = same_curve_as(curves)
        for i, (det, (fpr, tpr)) in enumerate(curves.items()):
            style = CURVE_STYLES[i % len(CURVE_STYLES)]
            label = f"{det} (same curve as {same[det]})" if det in same else det
            ax.plot(fpr, tpr, label=label, drawstyle="steps-post", **style)
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(xlabel="false positive rate (reals called fake)", ylabel="true positive rate", title=f"ROC: {bench}")
        ax.legend(loc="lower right")
        fig.tight_layout()
        p = folder / f"roc-{slug(bench)}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
        fig, axes = plt.subplots(1, len(detectors), figsize=(3.6 * len(detectors), 3.2), squeeze=False)
        for ax, det in zip(axes[0], detectors):
            score, _ = detector_columns(det, 0.5)
            for label, colour in (("real", "tab:blue"), ("fake", "tab:red")):
                vals = [score(r) for r in rs if r["label"] == label]
                ax.hist(vals, bins=20, range=(0, 1), alpha=0.6, color=colour, label=f"{label} ({len(vals)})")
            ax.set(title=det, xlabel="P(fake)")
            ax.legend()
        fig.suptitle(f"Scores: {bench}")
        fig.tight_layout()
        p = folder / f"hist-{slug(bench)}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths


def write_tables(root: Path, eval_id: str, run: dict, score_rows: list[dict], results: list[dict]) -> None:
    """One file per evaluation in each eval_* table, then refresh the catalog views."""
    from aig.manifests.dataset import Dataset

    ds = Dataset(root)
    for table, rows in (("eval_scores", score_rows), ("eval_results", results), ("eval_runs", [run])):
        ds.write_table(table, eval_id, [{**r, "eval_id": eval_id} for r in rows])
    ds.refresh_catalog()
