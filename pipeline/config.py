"""Typed build configuration: dataclass defaults < TOML file < CLI options."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_OUTPUT = "aig-data/default"
STAGES = ("ingest", "reconstruct", "inpaint", "generate")
LATENT_MODES = ("sample", "mode")
PAIR_FORMATS = ("png", "jpeg-matched")
DTYPES = ("auto", "float32", "float16", "bfloat16")
CANONICAL_POLICIES = ("cap", "center-crop", "native")
IMAGE_FORMATS = ("png", "jpeg")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key and the fix."""


@dataclass
class InputConfig:
    folders: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    embedded: bool = False  # set when no other input is given


@dataclass
class IngestConfig:
    policy: str = "cap"  # cap: native aspect, longest side <= size; center-crop: square crop resized to size
    size: int = 512
    min_size: int = 32  # shorter side below this is rejected as too_small
    max_pixels: int = 89_478_485  # Pillow's decompression-bomb default
    image_format: str = "png"
    jpeg_quality: int = 95
    keep_input: bool = True  # an image canonicalisation leaves as is keeps its own bytes (JPEG, or PNG when png)
    animated: str = "reject"  # animations are rejected (the only supported policy)


@dataclass
class ReconstructConfig:
    """Pixel task: real/reconstruction pairs through diffusers autoencoders."""

    # "ID", "ID:SUBFOLDER" or a table {model, subfolder, revision, name}
    autoencoders: list = field(default_factory=lambda: ["embedded"])
    latent: str = "sample"  # sample (seeded per pair) | mode
    # png: both lossless | jpeg-matched: both at the real's own JPEG quality when it came as JPEG
    pair_format: str = "png"
    batch_size: int = 8
    dtype: str = "auto"  # auto: float16 on GPU, float32 on CPU
    tile_above: int = 1024  # tiled encode/decode for images with a side above this
    seed: str = "aig-reconstruct-v1"


@dataclass
class InpaintConfig:
    """Pixel task, B-Free style: self-conditioned regeneration through an inpainting pipeline."""

    pipelines: list = field(default_factory=list)  # hub ids or local paths of inpainting pipelines
    mask: str = "empty"  # empty (regenerate everything) | rectangle (seeded random box repainted)
    steps: int = 25
    strength: float = 1.0
    guidance: float = 1.0
    use_caption: bool = False
    pair_format: str = "png"
    batch_size: int = 1
    dtype: str = "auto"
    tile_above: int = 1024
    seed: str = "aig-inpaint-v1"


@dataclass
class GenerateConfig:
    """Semantic task: text-to-image fakes prompted by the real images' captions."""

    pipelines: list = field(default_factory=list)  # hub ids or local paths of text-to-image pipelines
    prompt_files: list[str] = field(default_factory=list)  # extra prompts, one a line (besides the captions)
    images_per_prompt: int = 1
    steps: int = 30
    guidance: float = 5.0
    width: int = 512
    height: int = 512
    negative_prompt: str = ""
    scheduler: str | None = None  # a diffusers scheduler class name to swap in
    safety_checker: bool = False
    batch_size: int = 4
    dtype: str = "auto"
    seed: str = "aig-generate-v1"


@dataclass
class ShardConfig:
    samples_per_shard: int = 1000
    max_shard_bytes: int = 512 * 1024 * 1024


@dataclass
class SplitConfig:
    seed: str = "aig-split-v1"
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1


@dataclass
class RunnerConfig:
    executor: str = "ray"  # ray | local (in-process, for debugging)
    ray_address: str | None = None
    workers: int = 0  # 0 = one per CPU of the local machine
    max_retries: int = 2
    gpus_per_worker: float = -1.0  # model stages; -1 = 1 when the cluster has GPUs, else 0 (fractions allowed)


@dataclass
class BuildConfig:
    output: str = DEFAULT_OUTPUT
    stages: list[str] = field(default_factory=lambda: list(STAGES))
    inputs: InputConfig = field(default_factory=InputConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    reconstruct: ReconstructConfig = field(default_factory=ReconstructConfig)
    inpaint: InpaintConfig = field(default_factory=InpaintConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def content_hash(self) -> str:
        """Hash of everything that decides the dataset's content (not where or how fast it runs)."""
        d = self.to_dict()
        d.pop("output")
        d.pop("runner")
        d.pop("stages")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _merge(obj: Any, values: dict[str, Any], where: str) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{where}{key}'; known: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}{key}' is a section: write it as [{where}{key}]")
            _merge(current, value, f"{where}{key}.")
        else:
            setattr(obj, key, value)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """Defaults, then the TOML file, then dotted overrides like {"ingest.size": 256} (None values ignored)."""
    cfg = BuildConfig()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file '{p}' does not exist")
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file '{p}' is not valid TOML: {e}") from None
        _merge(cfg, data, "")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        *sections, key = dotted.split(".")
        nested: dict[str, Any] = {key: value}
        for s in reversed(sections):
            nested = {s: nested}
        _merge(cfg, nested, "")
    if not (cfg.inputs.folders or cfg.inputs.lists or cfg.inputs.shards):
        cfg.inputs.embedded = True
    validate(cfg)
    return cfg


def validate(cfg: BuildConfig) -> None:
    ing = cfg.ingest
    if ing.policy not in CANONICAL_POLICIES:
        raise ConfigError(f"ingest.policy '{ing.policy}' unknown; use one of {', '.join(CANONICAL_POLICIES)}")
    if ing.image_format not in IMAGE_FORMATS:
        raise ConfigError(f"ingest.image_format '{ing.image_format}' unknown; use one of {', '.join(IMAGE_FORMATS)}")
    if ing.animated != "reject":
        raise ConfigError("ingest.animated: only 'reject' is supported (animations are not photographs)")
    if ing.size < 8 or ing.min_size < 1 or ing.max_pixels < 1:
        raise ConfigError("ingest.size must be >= 8, ingest.min_size >= 1 and ingest.max_pixels >= 1")
    if not 1 <= ing.jpeg_quality <= 100:
        raise ConfigError("ingest.jpeg_quality must be within 1..100")
    if cfg.shards.samples_per_shard < 1 or cfg.shards.max_shard_bytes < 1024:
        raise ConfigError("shards.samples_per_shard must be >= 1 and shards.max_shard_bytes >= 1024")
    s = cfg.split
    if min(s.train, s.val, s.test) < 0 or abs(s.train + s.val + s.test - 1.0) > 1e-6:
        raise ConfigError(f"split ratios must be >= 0 and sum to 1 (got {s.train}, {s.val}, {s.test})")
    unknown = [st for st in cfg.stages if st not in STAGES]
    if unknown or not cfg.stages:
        raise ConfigError(f"unknown stage(s) {unknown or '(none given)'}; available: {', '.join(STAGES)}")
    if cfg.runner.executor not in ("ray", "local"):
        raise ConfigError(f"runner.executor '{cfg.runner.executor}' unknown; use ray or local")
    rec = cfg.reconstruct
    if rec.latent not in LATENT_MODES:
        raise ConfigError(f"reconstruct.latent '{rec.latent}' unknown; use one of {', '.join(LATENT_MODES)}")
    for section in (rec, cfg.inpaint):
        if section.pair_format not in PAIR_FORMATS:
            raise ConfigError(f"pair_format '{section.pair_format}' unknown; use one of {', '.join(PAIR_FORMATS)}")
    for section in (rec, cfg.inpaint, cfg.generate):
        if section.dtype not in DTYPES:
            raise ConfigError(f"dtype '{section.dtype}' unknown; use one of {', '.join(DTYPES)}")
        if section.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
    if cfg.inpaint.mask not in ("empty", "rectangle"):
        raise ConfigError(f"inpaint.mask '{cfg.inpaint.mask}' unknown; use empty or rectangle")
    gen = cfg.generate
    if gen.width % 8 or gen.height % 8 or gen.steps < 1 or gen.images_per_prompt < 1:
        raise ConfigError("generate.width/height must be multiples of 8; steps and images_per_prompt >= 1")
    if cfg.runner.workers < 0 or cfg.runner.max_retries < 0:
        raise ConfigError("runner.workers and runner.max_retries must be >= 0")
