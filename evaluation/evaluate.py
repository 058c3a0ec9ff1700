"""`aig evaluate`: score a dataset's test split and/or benchmarks with each branch, fuse, measure, store.

Pure parts (grouping, fusion of score rows) are separate from the effects (loading, writing).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from aig.manifests.dataset import Dataset

from .metrics import binary_metrics, detector_columns, fired, mean_fusion, or_fusion
from .options import DetectorOptions, EvalError, EvalOptions

BATCH_IMAGES = 32  # images held in memory at once


@dataclass
class EvalItem:
    item: str  # sample key or file path
    label: int  # 1 fake
    generator: str
    subset: str | None
    benchmark: str
    row: dict | None = None  # manifest row (dataset items)


SUBSET_OF_TASK = {"pixel": "pixel", "semantic": "semantic", "both": "semantic"}


def dataset_items(root: Path, split: str) -> list[EvalItem]:
    from .dataset_io import sample_rows

    rows = sample_rows(root, split)
    if not rows:
        raise EvalError(f"dataset '{root}' has no image samples in split {split!r}: "
                        f"check with `aig sql -d {root} \"select split, count(*) from samples group by all\"`")
    from aig.pipeline.shards import missing_shard

    missing = missing_shard(root, [r["shard"] for r in rows])
    if missing:
        raise EvalError(missing)
    name = f"{root.name}:{split}"
    return [EvalItem(r["key"], 1 if r["label"] == "fake" else 0,
                     r["generator"] if r["label"] == "fake" else (r["generator"] or "-"),
                     SUBSET_OF_TASK.get(r["task"]), name, r) for r in rows]


def benchmark_items(specs: list[str]) -> tuple[list[EvalItem], list[str]]:
    from .folders import BenchmarkError, load_benchmark

    items, unlabelled = [], []
    for spec in specs:
        try:
            found, skipped = load_benchmark(spec)
        except BenchmarkError as e:
            raise EvalError(str(e)) from None
        items += [EvalItem(i.path, i.label, i.generator, i.subset, i.benchmark) for i in found]
        unlabelled += skipped
    return items, unlabelled


def load_image(root: Path | None, it: EvalItem):
    from aig.pipeline.shards import read_member

    from .dataset_io import open_path, open_rgb

    if it.row is None:
        return open_path(it.item)
    try:
        return open_rgb(read_member(root, it.row))
    except OSError as e:
        return None, f"unreadable: {e}"


def score_batch(items: list[EvalItem], images: list, statuses: list[str | None], perturbation: str,
                pixel, semantic, opts: DetectorOptions) -> list[dict]:
    """Score rows for one batch under one perturbation (unreadable images get a row with their status)."""
    from .robustness import apply

    ok = [i for i, img in enumerate(images) if img is not None]
    perturbed = [apply(images[i], perturbation) for i in ok]
    pix = pixel.score(perturbed) if pixel and perturbed else [None] * len(ok)
    sem = semantic.ask(perturbed) if semantic and perturbed else [None] * len(ok)
    by_index = {i: (p, s) for i, p, s in zip(ok, pix, sem)}
    rows = []
    for i, it in enumerate(items):
        row = {"perturbation": perturbation, "benchmark": it.benchmark, "item": it.item,
               "label": "fake" if it.label else "real", "generator": it.generator, "subset": it.subset,
               "status": statuses[i] or "ok"}
        if i in by_index:
            p, s = by_index[i]
            row["pixel_prob"] = p
            if s is not None:
                row.update(semantic_verdict=s.verdict, semantic_status=s.status, semantic_score=s.prob_fake,
                           inconsistencies=json.dumps(s.inconsistencies, ensure_ascii=False), semantic_text=s.text)
            row.update(fuse_row(p, s.says_fake if s is not None else None, opts,
                                s.prob_fake if s is not None else None))
        rows.append(row)
    return rows


def fuse_row(pixel_prob: float | None, vlm_fake: bool | None, opts: DetectorOptions, vlm_prob: float | None = None) -> dict:
    """Fused verdict of one image; OR uses the VLM's verdict, mean fusion its verdict-word probability."""
    if pixel_prob is None and vlm_fake is None:
        return {}
    if pixel_prob is None:
        return {"fired": "semantic" if vlm_fake else "none", "fused_pred": "fake" if vlm_fake else "real"}
    if vlm_fake is None:
        fake = pixel_prob > opts.tau
        return {"fired": "pixel" if fake else "none", "fused_pred": "fake" if fake else "real"}
    if opts.fusion == "or":
        score, pred = or_fusion([pixel_prob], [vlm_fake], opts.tau)
    else:
        score, pred = mean_fusion([pixel_prob], [vlm_prob if vlm_prob is not None else float(vlm_fake)],
                                  opts.weight, opts.tau)
    return {"fused_score": float(score[0]), "fused_pred": "fake" if pred[0] else "real",
            "fired": fired(pixel_prob > opts.tau, vlm_fake)}


def groups(rows: list[dict]) -> list[tuple[str, str, list[dict]]]:
    """(kind, name, rows): everything; per fake generator and per subset, with their reals.

    A group's reals are those sharing its generator (pairs, GenImage folders) when there are any, else the
    reals of the same subset, else all reals of the benchmark."""
    out = [("all", "all", rows)]
    reals = [r for r in rows if r["label"] == "real"]

    def with_reals(fakes, key, value):
        mine = [r for r in reals if r.get(key) == value]
        if not mine and fakes and fakes[0].get("subset"):
            mine = [r for r in reals if r.get("subset") == fakes[0]["subset"]]
        return fakes + (mine or reals)

    gens = sorted({r["generator"] for r in rows if r["label"] == "fake"})
    if len(gens) > 1 or (gens and gens[0] != "all"):
        for g in gens:
            out.append(("generator", g, with_reals([r for r in rows if r["label"] == "fake" and r["generator"] == g],
                                                   "generator", g)))
    subsets = sorted({r["subset"] for r in rows if r.get("subset") and r["label"] == "fake"})
    for s in subsets:
        fakes = [r for r in rows if r["label"] == "fake" and r.get("subset") == s]
        out.append(("subset", s, with_reals(fakes, "subset", s)))
    return out


def result_rows(score_rows: list[dict], detectors: list[str], tau: float) -> list[dict]:
    out = []
    order = {p: i for i, p in enumerate(dict.fromkeys(r["perturbation"] for r in score_rows))}
    keys = sorted({(r["perturbation"], r["benchmark"]) for r in score_rows}, key=lambda k: (order[k[0]], k[1]))
    for pert, bench in keys:
        rows = [r for r in score_rows if r["perturbation"] == pert and r["benchmark"] == bench and r["status"] == "ok"]
        for kind, name, rs in groups(rows):
            y = [1 if r["label"] == "fake" else 0 for r in rs]
            for det in detectors:
                score, pred = detector_columns(det, tau)
                m = binary_metrics(y, [score(r) for r in rs], [int(pred(r)) for r in rs])
                out.append({"perturbation": pert, "benchmark": bench, "group_kind": kind, "group_name": name,
                            "detector": det, **m})
    return out


@dataclass
class EvalReport:
    eval_id: str
    folder: Path
    scores: list[dict]
    results: list[dict]
    unreadable: list[tuple[str, str]]
    unlabelled: list[str]
    markdown: str
    plots: list[Path]
    dataset: Path | None = None

    def lines(self) -> list[str]:
        """The command's summary: the Markdown tables, then where the outputs are."""
        return [self.markdown, f"evaluation {self.eval_id}: {len(self.scores)} scores, {len(self.results)} result rows",
                f"  tables: {self.folder / 'results.md'}", *(f"  plot: {p}" for p in self.plots),
                f"  query: aig sql -d {self.dataset} \"select * from eval_results where eval_id = '{self.eval_id}' "
                "and group_kind = 'all'\""]


def next_eval_id(root: Path) -> str:
    n = len(list(Dataset(root).table_dir("eval_runs").glob("eval-*.parquet")))
    return f"eval-{n + 1:04d}"


def load_branches(options: DetectorOptions, batch_size: int = 16):
    """(pixel branch or None, semantic branch or None, the options with tau resolved), threads set."""
    from dataclasses import replace

    from .branches import PixelBranch, SemanticBranch

    pixel = PixelBranch(options.pixel, batch_size) if options.pixel else None
    resolved = replace(options, tau=resolved_tau(options.tau, pixel))
    semantic = (SemanticBranch(options.semantic_model, options.semantic_adapter, max(1, batch_size // 4),
                               options.max_new_tokens, options.constrained) if options.has_semantic else None)
    return pixel, semantic, resolved


def run(options: EvalOptions, *, command: str = "aig.evaluate", log=print) -> EvalReport:
    """`aig evaluate`: score, fuse, measure; write the eval tables, results.md and plots under the dataset."""
    from .branches import set_threads

    options.check()
    if not (options.pixel or options.has_semantic):
        raise EvalError("nothing to evaluate: pass --pixel CHECKPOINT and/or --semantic-model MODEL "
                        "(with --semantic-adapter DIR for a trained LoRA)")
    split, benchmarks, root = options.split, list(options.benchmarks), Path(options.dataset)
    if not split and not benchmarks:
        raise EvalError("no images: evaluate a dataset split (--split test) and/or --benchmark FOLDER_OR_LIST")
    items, unlabelled = benchmark_items(benchmarks)
    if split:
        from aig.manifests.catalog import CatalogError

        try:
            items = dataset_items(root, split) + items
        except CatalogError as e:
            raise EvalError(f"{e} (or pass --split none with --benchmark to evaluate folders only)") from None
    t0 = time.time()
    threads = set_threads(options.threads)
    pixel, semantic, opts = load_branches(options, options.batch_size)
    if pixel is not None and pixel.threshold is not None and abs(pixel.threshold - opts.tau) > 1e-9:
        log(f"note: tau = {opts.tau}; the checkpoint's calibrated threshold is {pixel.threshold:.3f} (--tau calibrated)")
    detectors = [d for d, on in (("pixel", pixel), ("semantic", semantic), ("fused", pixel and semantic)) if on]
    score_rows, unreadable = [], []
    for start in range(0, len(items), BATCH_IMAGES):
        batch = items[start:start + BATCH_IMAGES]
        loaded = [load_image(root, it) for it in batch]
        images = [img for img, _ in loaded]
        statuses = [err for _, err in loaded]
        unreadable += [(it.item, err) for it, err in zip(batch, statuses) if err]
        for pert in opts.perturbations:
            score_rows += score_batch(batch, images, statuses, pert, pixel, semantic, opts)
        log(f"  scored {min(start + BATCH_IMAGES, len(items))}/{len(items)} images x {len(opts.perturbations)} "
            f"perturbation(s)")
    if len(unreadable) == len(items):
        raise EvalError(f"none of the {len(items)} images could be read (first: {unreadable[0][0]}: {unreadable[0][1]})")
    results = result_rows(score_rows, detectors, opts.tau)
    eval_id = next_eval_id(root)
    folder = Dataset(root).eval_dir(eval_id)
    from .outputs import markdown_report, write_plots, write_tables

    markdown = markdown_report(results, detectors, unreadable, unlabelled, opts)
    plots = write_plots(folder, score_rows, detectors)
    (folder / "results.md").write_text(markdown)
    config = {"tau": opts.tau, "fusion": opts.fusion, "weight": opts.weight, "perturbations": opts.perturbations,
              "split": split, "benchmarks": benchmarks, "detectors": detectors, "batch_size": opts.batch_size,
              "max_new_tokens": opts.max_new_tokens, "threads": threads, "constrained": opts.constrained,
              "pixel_config": getattr(pixel, "cfg", None)}
    run_row = {"eval_id": eval_id, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
           "config": json.dumps(config, default=str, sort_keys=True),
           "pixel_checkpoint": opts.pixel, "semantic_model": getattr(semantic, "model_id", None),
           "semantic_adapter": opts.semantic_adapter, "n_images": len(items), "n_unreadable": len(unreadable),
           "seconds": time.time() - t0}
    write_tables(root, eval_id, run_row, score_rows, results)
    return EvalReport(eval_id, folder, score_rows, results, unreadable, unlabelled, markdown, plots, options.dataset)


def resolved_tau(tau: float | None, pixel) -> float:
    """The threshold to use: the one given, or (None) the pixel checkpoint's calibrated one."""
    if tau is not None:
        return tau
    if pixel is None or pixel.threshold is None:
        raise EvalError("--tau calibrated needs a pixel checkpoint whose config.json has a 'threshold'")
    return float(pixel.threshold)
