"""What `aig evaluate`, `predict`, `audit` and `report` are asked to do: typed options and their checks.

Light to import: the CLI reads its defaults here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aig.manifests.errors import AigError

from .robustness import SWEEP
from .robustness import check as check_perturbation

FUSIONS = ("or", "mean")


class EvalError(AigError, ValueError):
    """Evaluation cannot run as asked; the message says why and what to do."""


class AuditError(AigError, ValueError):
    """The audit cannot run as asked; the message says why."""


def parse_tau(text: str) -> float | None:
    """A number, or 'calibrated' (None): the pixel checkpoint's own threshold."""
    if str(text).strip().lower() == "calibrated":
        return None
    try:
        return float(text)
    except ValueError:
        raise EvalError(f"--tau {text!r} is neither a number nor 'calibrated'") from None


@dataclass(kw_only=True)
class DetectorOptions:
    """The branches and their fusion: what `aig evaluate` and `aig predict` share."""
    pixel: str | None = None  # pixel checkpoint
    semantic_model: str | None = None  # VLM hub id or path
    semantic_adapter: str | None = None  # LoRA adapter folder
    tau: float | None = 0.5  # None: the pixel checkpoint's calibrated threshold
    fusion: str = "or"
    weight: float = 0.5
    max_new_tokens: int = 256
    threads: int | None = None
    constrained: bool = False

    def check(self) -> None:
        if self.fusion not in FUSIONS:
            raise EvalError(f"--fusion {self.fusion!r} unknown; use {' or '.join(FUSIONS)}")
        if self.tau is not None and not 0.0 <= self.tau < 1.0:
            raise EvalError(f"--tau {self.tau} must be in [0, 1)")
        if not 0.0 <= self.weight <= 1.0:
            raise EvalError(f"--weight {self.weight} must be in [0, 1]")

    @property
    def has_semantic(self) -> bool:
        return bool(self.semantic_model or self.semantic_adapter)


@dataclass(kw_only=True)
class EvalOptions(DetectorOptions):
    """`aig evaluate`: a dataset split (None: benchmarks only) and/or benchmarks, under perturbations."""
    dataset: Path
    split: str | None = "test"
    benchmarks: list[str] = field(default_factory=list)
    perturbations: list[str] = field(default_factory=lambda: ["none"])
    batch_size: int = 16

    def check(self) -> None:
        super().check()
        for p in self.perturbations:
            try:
                check_perturbation(p)
            except ValueError as e:
                raise EvalError(str(e)) from None


@dataclass(kw_only=True)
class PredictOptions(DetectorOptions):
    paths: list[Path]  # images or folders (searched recursively)


@dataclass(kw_only=True)
class AuditOptions:
    dataset: Path
    threshold: float = 0.6  # flag an attribute whose one-feature AUROC exceeds this

    def check(self) -> None:
        if not 0.5 <= self.threshold < 1.0:
            raise AuditError(f"--threshold {self.threshold} must be in [0.5, 1)")


@dataclass(kw_only=True)
class ReportOptions:
    dataset: Path
    output: Path | None = None  # default: DATASET/report.html
    pairs: int = 6  # pixel pairs in the gallery
    threshold: float = AuditOptions.threshold


def perturbations(sweep: bool, extra: list[str]) -> list[str]:
    """'none' first, then the sweep's (when asked) and the extra ones, each once."""
    return list(dict.fromkeys(["none"] + (list(SWEEP) if sweep else []) + list(extra)))
