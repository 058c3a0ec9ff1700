"""aig: data pipeline, training and evaluation for AI-generated image detection.

The Python API calls the same library functions as the `aig` command; heavy libraries load on first use.

    import aig
    report = aig.build_data(overrides={"inputs.folders": ["photos/"], "output": "ds", "stages": ["ingest"]})
    con = aig.open_dataset("ds")
    con.sql("select split, count(*) from samples group by all").show()
"""

from __future__ import annotations

from pathlib import Path


# A source checkout keeps the folders beside aig/ (the installed wheel has them inside): let them be found as
# aig.<folder> when this package is imported from the repository itself (cwd or PYTHONPATH).
def _beside_checkout() -> None:
    from pathlib import Path as _Path

    here = _Path(__file__).resolve().parent
    if not (here / "pipeline").is_dir() and (here.parent / "pipeline" / "__init__.py").is_file():
        __path__.append(str(here.parent))


_beside_checkout()

from aig.evaluation.options import AuditOptions as _Audit  # noqa: E402  (after the checkout's folders are findable)
from aig.evaluation.options import DetectorOptions as _Detector  # noqa: E402
from aig.manifests.errors import AigError  # noqa: E402

__all__ = ["AigError", "audit", "build_data", "evaluate", "label_semantic", "open_dataset", "predict", "train"]


def build_data(config=None, *, overrides: dict | None = None, overwrite: bool = False):
    """`aig build-data`: `config` is a BuildConfig, a TOML file (its [build-data] table) or None (defaults);
    `overrides` maps dotted keys ('output', 'inputs.folders', 'stages', 'runner.executor', ...) to values.
    Returns the BuildReport (run id, samples and failures by stage)."""
    from aig.pipeline.build import build
    from aig.pipeline.config import BuildConfig, ConfigError, load_config

    from . import stages  # noqa: F401  (registers the model stages)

    if isinstance(config, BuildConfig):
        if overrides:
            raise ConfigError("give a BuildConfig or overrides, not both")
        cfg = config
    else:
        cfg = load_config(Path(config) if config else None, overrides or {})
    return build(cfg, command="aig.build_data", overwrite=overwrite)


def label_semantic(dataset: str | Path, model: str, **options):
    """`aig label-semantic`: options are LabelOptions' (the command's, with underscores: backend='openai',
    limit=10, ...); progress goes to stderr. Returns the LabelOutcome (`.report`: run id, counts); a run that
    the command would end with exit 1 raises LabelingFailed (its `.outcome` holds the counts)."""
    from aig.labeling.command import LabelingFailed, LabelOptions, run

    outcome = run(LabelOptions(dataset=Path(dataset), model=model, **options), command="aig.label_semantic")
    if outcome.problem:
        raise LabelingFailed(outcome.problem, outcome)
    return outcome


def __getattr__(name: str):
    if name == "LabelingFailed":  # kept importable from here; defined beside the labeling run
        from aig.labeling.command import LabelingFailed

        return LabelingFailed
    raise AttributeError(f"module 'aig' has no attribute {name!r}")


def train(branch: str, **options):
    """`aig train --branch BRANCH`: options are the command's, with underscores (dataset, output, max_steps, ...);
    unset ones take the branch's defaults. Returns the TrainReport (export folder, steps, validation metrics)."""
    from aig.training.run import config_from_options, run

    options.setdefault("dataset", "aig-data")
    options.setdefault("output", str(Path("aig-runs") / branch))
    return run(config_from_options(branch, options))


def evaluate(dataset: str | Path, *, tau: str | float = _Detector.tau, command: str = "aig.evaluate", log=print, **options):
    """`aig evaluate`: options are EvalOptions' (split='test' or None, benchmarks=[...], pixel=CHECKPOINT,
    semantic_model=..., semantic_adapter=..., fusion, weight, perturbations=['none', 'jpeg75'], batch_size, ...);
    tau is a number or 'calibrated'. Scores, writes the eval tables; returns the EvalReport."""
    from aig.evaluation.evaluate import run
    from aig.evaluation.options import EvalOptions, parse_tau

    lists = {k: list(v) for k, v in options.items() if k in ("benchmarks", "perturbations")}
    return run(EvalOptions(dataset=Path(dataset), tau=parse_tau(tau), **{**options, **lists}), command=command, log=log)


def predict(paths: list[str | Path], *, tau: str | float = _Detector.tau, **options):
    """`aig predict`: options are PredictOptions' (pixel=CHECKPOINT, semantic_model=..., fusion, ...); returns the
    PredictReport (`.results`: one dict per image)."""
    from aig.evaluation.options import PredictOptions, parse_tau
    from aig.evaluation.predict import run

    return run(PredictOptions(paths=[Path(p) for p in paths], tau=parse_tau(tau), **options))


def audit(dataset: str | Path, threshold: float = _Audit.threshold):
    """`aig audit`: the shortcut audit; returns the AuditResult (`.shortcuts`, `.degenerate`, `.unreadable`)."""
    from aig.evaluation.audit import run
    from aig.evaluation.options import AuditOptions

    return run(AuditOptions(dataset=Path(dataset), threshold=threshold))


def open_dataset(path: str | Path):
    """A read-only DuckDB connection over a dataset's catalog (views samples, failures, runs, shards, labels, eval
    tables): `aig.open_dataset("aig-data").sql("select ...")`. A URL (s3://...) is mirrored locally first."""
    from aig.manifests.catalog import connect_readonly
    from aig.pipeline.storage import local_view

    return connect_readonly(local_view(str(path)))

