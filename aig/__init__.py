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

from aig.manifests.errors import AigError  # noqa: E402  (after the checkout's folders are findable)

__all__ = ["AigError", "build_data", "evaluate", "label_semantic", "open_dataset", "train"]


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


def label_semantic(dataset: str | Path, model: str, **options) -> None:
    """`aig label-semantic`: options are the command's, with underscores (backend='openai', limit=10, ...);
    progress and the summary go to stderr/stdout as with the command."""
    import inspect

    from aig.labeling.cli import run_label_semantic

    from .cli import label_semantic as command

    values = {n: p.default for n, p in inspect.signature(command).parameters.items()}
    unknown = sorted(set(options) - set(values))
    if unknown:
        raise TypeError(f"label_semantic() got unknown option(s): {', '.join(unknown)}")

    def fail(msg: str, code: int = 2):
        raise LabelingFailed(msg)

    run_label_semantic(fail, {**values, **options, "dataset": Path(dataset), "model": model}, "aig.label_semantic")


class LabelingFailed(AigError):
    """A labeling run was refused or ended with too many failed candidates."""


def train(branch: str, **options):
    """`aig train --branch BRANCH`: options are the command's, with underscores (dataset, output, max_steps, ...);
    unset ones take the branch's defaults. Returns the TrainReport (export folder, steps, validation metrics)."""
    from aig.training.run import config_from_options, run

    options.setdefault("dataset", "aig-data")
    options.setdefault("output", str(Path("aig-runs") / branch))
    return run(config_from_options(branch, options))


def evaluate(dataset: str | Path, *, split: str | None = "test", benchmarks: list[str] = (), pixel: str | None = None,
             semantic_model: str | None = None, semantic_adapter: str | None = None, tau: str = "0.5",
             fusion: str = "or", weight: float = 0.5, perturbations: list[str] = ("none",), **kw):
    """`aig evaluate`: scores the split and/or benchmarks, writes the eval tables; returns the EvalReport."""
    from aig.evaluation.evaluate import EvalOptions, parse_tau, run_evaluation

    opts = EvalOptions(tau=parse_tau(tau), fusion=fusion, weight=weight, perturbations=list(perturbations))
    return run_evaluation(Path(dataset), split=split, benchmarks=list(benchmarks), pixel_path=pixel,
                          semantic_model=semantic_model, semantic_adapter=semantic_adapter, opts=opts,
                          command="aig.evaluate", **kw)


def open_dataset(path: str | Path):
    """A read-only DuckDB connection over a dataset's catalog (views samples, failures, runs, shards, labels, eval
    tables): `aig.open_dataset("aig-data").sql("select ...")`. A URL (s3://...) is mirrored locally first."""
    from aig.manifests.catalog import connect_readonly
    from aig.pipeline.storage import local_view

    return connect_readonly(local_view(str(path)))

