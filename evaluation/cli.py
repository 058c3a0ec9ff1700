"""Command bodies for `aig evaluate`, `aig predict`, `aig audit` and `aig report` (registered in aig/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .folders import IMAGE_EXTS


def _fail(msg: str, code: int = 2):
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def evaluate(dataset: Path, split: str, benchmarks: list[str], pixel: str | None, semantic_model: str | None,
             semantic_adapter: str | None, tau: str, fusion: str, weight: float, sweep: bool,
             perturb: list[str], batch_size: int, max_new_tokens: int, threads: int | None = None,
             constrained: bool = False) -> None:
    from .evaluate import EvalOptions, parse_tau, run_evaluation
    from .robustness import SWEEP

    perts = ["none"] + (list(SWEEP) if sweep else []) + [p for p in perturb if p not in SWEEP or not sweep]
    tau_value = parse_tau(tau)
    from aig.pipeline.redact import command_line

    opts = EvalOptions(tau=tau_value, fusion=fusion, weight=weight, perturbations=list(dict.fromkeys(perts)))
    rep = run_evaluation(dataset, split=None if split == "none" else split, benchmarks=benchmarks,
                         pixel_path=pixel, semantic_model=semantic_model, semantic_adapter=semantic_adapter,
                         opts=opts, command=command_line(), batch_size=batch_size,
                         max_new_tokens=max_new_tokens, threads=threads, constrained=constrained, log=lambda m: typer.echo(m, err=True))
    typer.echo(rep.markdown)
    typer.echo(f"evaluation {rep.eval_id}: {len(rep.scores)} scores, {len(rep.results)} result rows")
    typer.echo(f"  tables: {rep.folder / 'results.md'}")
    for p in rep.plots:
        typer.echo(f"  plot: {p}")
    typer.echo(f"  query: aig sql -d {dataset} \"select * from eval_results where eval_id = '{rep.eval_id}' "
               f"and group_kind = 'all'\"")
    if rep.unreadable:
        typer.echo(f"warning: {len(rep.unreadable)} unreadable image(s) excluded from the metrics (listed above)", err=True)


def _expand(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
        else:
            out.append(p)
    return out


def predict(paths: list[Path], pixel: str | None, semantic_model: str | None, semantic_adapter: str | None,
            tau: str, fusion: str, weight: float, as_json: bool, max_new_tokens: int, threads: int | None = None,
            constrained: bool = False) -> None:
    from .branches import PixelBranch, SemanticBranch, set_threads
    from .dataset_io import open_path
    from .evaluate import EvalOptions, fuse_row, parse_tau, resolve_tau

    opts = EvalOptions(tau=parse_tau(tau), fusion=fusion, weight=weight)
    opts.check()
    if not (pixel or semantic_model or semantic_adapter):
        _fail("pass --pixel CHECKPOINT and/or --semantic-model MODEL (with --semantic-adapter DIR)")
    files = _expand(paths)
    if not files:
        _fail("no images found in the given paths")
    set_threads(threads)
    pix = PixelBranch(pixel) if pixel else None
    sem = SemanticBranch(semantic_model, semantic_adapter, max_new_tokens=max_new_tokens,
                         constrained=constrained) if (semantic_model or semantic_adapter) else None
    resolve_tau(opts, pix)
    results, bad = [], 0
    for f in files:
        img, err = open_path(str(f))
        rec = {"path": str(f), "error": err, "verdict": None, "pixel_prob": None, "semantic_verdict": None,
               "fired": None, "inconsistencies": []}
        if img is None:
            bad += 1
        else:
            p = pix.score([img])[0] if pix else None
            s = sem.ask([img])[0] if sem else None
            fused = fuse_row(p, s.says_fake if s else None, opts, s.prob_fake if s else None)
            rec.update(verdict=fused["fused_pred"], pixel_prob=p, fired=fused["fired"],
                       fused_score=fused.get("fused_score"))
            if s:
                rec.update(semantic_verdict=s.verdict, semantic_prob=s.prob_fake, semantic_status=s.status, inconsistencies=s.inconsistencies,
                           semantic_text=s.text)
        results.append(rec)
    if as_json:
        typer.echo(json.dumps(results, indent=1, ensure_ascii=False))
    else:
        for r in results:
            if r["error"]:
                typer.echo(f"{r['path']}: ERROR {r['error']}")
                continue
            parts = [f"{r['path']}: {r['verdict'].upper()}"]
            if r["pixel_prob"] is not None:
                parts.append(f"pixel {r['pixel_prob']:.3f}")
            if sem:
                parts.append(f"semantic {r['semantic_verdict'] or 'unreadable answer'} (P(fake) {r['semantic_prob']:.3f})")
            parts.append(f"fired: {r['fired']}")
            typer.echo("  ".join(parts))
            for inc in r["inconsistencies"]:
                typer.echo(f"    - {inc.get('category')}: {inc.get('description')}")
    if bad:
        typer.echo(f"error: {bad} of {len(files)} image(s) could not be read", err=True)
        raise typer.Exit(1)


def audit(dataset: Path, threshold: float, strict: bool, as_json: bool) -> None:
    from dataclasses import asdict

    from aig.manifests.catalog import CatalogError

    from .audit import audit_dataset, to_markdown

    if not 0.5 <= threshold < 1.0:
        _fail(f"--threshold {threshold} must be in [0.5, 1)")
    try:
        res = audit_dataset(dataset, threshold)
    except CatalogError as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps({"threshold": threshold, "summary": res.summary, "scores": [asdict(f) for f in res.scores],
                               "shortcuts": [asdict(f) for f in res.shortcuts], "unreadable": res.unreadable, "degenerate": res.degenerate}, indent=1))
    else:
        typer.echo(to_markdown(res))
        for u in res.unreadable:
            typer.echo(f"unreadable: {u}")
        if res.shortcuts:
            typer.echo("")
            for f in res.shortcuts:
                typer.echo(f"SHORTCUT: {f.task}: '{f.attribute}' alone predicts the label (AUROC {f.auroc:.3f} > {threshold})")
        else:
            typer.echo(f"\nno shortcut: no attribute alone predicts the label above AUROC {threshold}")
    if res.unreadable:
        typer.echo(f"error: {len(res.unreadable)} sample(s) could not be read: run `aig verify {dataset}`", err=True)
        raise typer.Exit(1)
    if strict and (res.shortcuts or res.degenerate):
        raise typer.Exit(1)


def report(dataset: Path, output: Path | None, pairs: int, threshold: float) -> None:
    from aig.manifests.catalog import CatalogError

    from .report import build_report

    try:
        path = build_report(dataset, output, pairs=pairs, audit_threshold=threshold)
    except CatalogError as e:
        _fail(str(e))
    except (PermissionError, IsADirectoryError, NotADirectoryError) as e:
        _fail(f"cannot write the report to '{e.filename}' ({e.strerror}); pass --output FILE in a writable folder")
    typer.echo(f"report: {path.resolve()}")
