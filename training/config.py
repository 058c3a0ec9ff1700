"""Resolved configuration of a training run (everything recorded with the checkpoint): one base with the
fields every branch has, extended by the pixel and the semantic branch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from aig.manifests.errors import AigError

from .augment import AugmentRecipe


class ConfigError(AigError, ValueError):
    """A training option is invalid; the message names it."""


TRACKERS = ("tensorboard",)  # --log-with: metrics also go to these, beside metrics.jsonl


def check_log_with(trackers: list[str]) -> None:
    """Refuse unknown trackers and missing packages before training starts."""
    import importlib.util

    for t in trackers:
        if t not in TRACKERS:
            raise ConfigError(f"--log-with {t!r} unknown; use {' or '.join(TRACKERS)}")
        if importlib.util.find_spec(t) is None:
            raise ConfigError(f"--log-with {t} needs the {t} package: pip install 'aig[{t}]'")


@dataclass(kw_only=True)
class TrainConfig:
    """The fields of every branch; a branch declares the ones whose defaults differ (output, model, LoRA, optimizer)."""

    branch: ClassVar[str]
    dataset: str = "aig-data/default"
    lora_alpha: float = 16.0
    lora_targets: list[str] = field(default_factory=list)  # module-name suffixes; empty = the branch's default
    grad_accum: int = 1
    max_steps: int = 0                # 0 = from epochs
    epochs: float = 1.0
    seed: int = 0
    val_every: int = 0                # steps; 0 = only at the end
    save_every: int = 0               # steps; 0 = only at the end
    log_every: int = 10
    device: str = "auto"
    amp: str = "auto"                 # auto (bfloat16 autocast on GPU), bf16, fp16, off
    threads: int = 0                  # torch CPU threads per process; 0 = torch's default
    num_workers: int = 0              # Ray Train workers; 0 = this process only
    ray_address: str | None = None
    resume: bool = False
    progress: bool = True
    log_with: list[str] = field(default_factory=list)  # trackers beside metrics.jsonl: tensorboard

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**d)

    @classmethod
    def option_names(cls) -> set[str]:
        """The options (keyword arguments) this branch takes."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_options(cls, options: dict) -> "TrainConfig":
        """The config from options that are all in option_names() (absent = default)."""
        return cls(**options)

    def checks(self) -> list[tuple[bool, str]]:
        """(condition, message when it fails) of every branch; a branch adds its own."""
        return [
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.grad_accum >= 1, "--grad-accum must be >= 1"),
            (self.lr > 0, "--lr must be > 0"),
            (self.max_steps >= 0 and self.epochs > 0, "--max-steps must be >= 0 and --epochs > 0"),
            (self.num_workers >= 0, "worker counts must be >= 0"),
            (self.amp in ("auto", "bf16", "fp16", "off"), "--amp must be auto, bf16, fp16 or off"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "--device must be auto, cpu or cuda[:N]"),
        ]

    def validate(self) -> None:
        for ok, msg in self.checks():
            if not ok:
                raise ConfigError(msg)
        check_log_with(self.log_with)


@dataclass(kw_only=True)
class PixelConfig(TrainConfig):
    branch: ClassVar[str] = "pixel"
    output: str = "aig-runs/pixel"
    model: str = "aig_tinycnn"
    pretrained: str | None = None     # None/'none', 'hub', or a local file/folder
    lora_rank: int = 0                # 0 = full fine-tune
    lora_dropout: float = 0.0
    drop_rate: float = 0.0
    augment: AugmentRecipe = field(default_factory=AugmentRecipe)
    batch_size: int = 16              # crop pairs per step and rank (x2 images)
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    min_lr_ratio: float = 0.05
    loader_workers: int = 1
    crops_per_pair: int = 4
    shuffle_buffer: int = 256
    calib_fraction: float = 0.1       # train pairs held back to calibrate the threshold
    calibrate_on: str = "holdout"     # holdout (those pairs), val (the val split), both
    max_tiles: int = 16
    val_max_pairs: int = 200

    @classmethod
    def from_dict(cls, d: dict) -> "PixelConfig":
        d = dict(d)
        d["augment"] = AugmentRecipe.from_dict(d.get("augment", {}))
        return cls(**d)

    @classmethod
    def option_names(cls) -> set[str]:
        return (super().option_names() - {"augment"}) | {f.name for f in dataclasses.fields(AugmentRecipe)}

    @classmethod
    def from_options(cls, options: dict) -> "PixelConfig":
        """Augmentation options (crop_size, flip_p, jpeg_quality, ...) go to the recipe."""
        aug = {f.name for f in dataclasses.fields(AugmentRecipe)}
        return cls(augment=AugmentRecipe.from_dict({k: v for k, v in options.items() if k in aug}),
                   **{k: v for k, v in options.items() if k not in aug})

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.lora_rank >= 0, "--lora-rank must be >= 0 (0 = full fine-tune)"),
            (self.loader_workers >= 0, "worker counts must be >= 0"),
            (self.crops_per_pair >= 1 and self.shuffle_buffer >= 1, "--crops-per-pair and --shuffle-buffer must be >= 1"),
            (0 <= self.calib_fraction < 1, "--calib-fraction must be within [0, 1)"),
            (self.max_tiles >= 1, "--max-tiles must be >= 1"),
            (self.calibrate_on in ("holdout", "val", "both"), "--calibrate-on must be holdout, val or both"),
        ]

    def validate(self) -> None:
        try:
            self.augment.validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None
        super().validate()
        if self.pretrained not in (None, "", "none", "hub"):
            from pathlib import Path

            if not Path(self.pretrained).exists():
                raise ConfigError(f"--pretrained {self.pretrained!r}: no such file or folder (use a path, 'hub' or 'none')")


@dataclass(kw_only=True)
class SemanticConfig(TrainConfig):
    branch: ClassVar[str] = "semantic"
    output: str = "aig-runs/semantic"
    model: str = ""                   # hub id or local path (AutoModelForImageTextToText + AutoProcessor)
    lora_rank: int = 8
    lora_dropout: float = 0.05
    batch_size: int = 1               # records per step and rank
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    min_lr_ratio: float = 0.0
    max_length: int = 2048
    gradient_checkpointing: bool = False
    merge: bool = False
    val_max_records: int = 64

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("--branch semantic needs --model (a VLM hub id or local folder, e.g. the demo's "
                              "aig-data/models/tiny-vlm)")
        if self.lora_rank < 1:
            raise ConfigError("--branch semantic trains a LoRA adapter: --lora-rank must be >= 1")
        if self.max_length < 16:
            raise ConfigError("--max-length must be >= 16")
        super().validate()


CONFIGS: dict[str, type[TrainConfig]] = {"pixel": PixelConfig, "semantic": SemanticConfig}
