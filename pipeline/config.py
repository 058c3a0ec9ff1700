"""Typed build configuration: dataclass defaults < TOML file < CLI options."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aig.manifests.errors import AigError

DEFAULT_OUTPUT = "aig-data/default"
STAGES = ("ingest", "reconstruct", "inpaint", "generate")
LATENT_MODES = ("sample", "mode")
PAIR_FORMATS = ("auto", "png", "jpeg-matched")
DTYPES = ("auto", "float32", "float16", "bfloat16")
CANONICAL_POLICIES = ("native", "cap", "center-crop")
# --size when not given: native's maximum side (centre crop above it), cap's maximum side, center-crop's side
DEFAULT_SIZE = {"native": 2048, "cap": 512, "center-crop": 512}
IMAGE_FORMATS = ("png", "jpeg")
LIST_FORMATS = ("txt", "csv", "tsv", "tsv.gz", "csv.gz", "json", "jsonl", "jsonl.gz", "parquet")
# a config file has one table per command: [build-data], [train], [sql], ...
COMMANDS = ("build-data", "sql", "verify", "info", "regenerate", "evaluate", "predict", "audit", "report",
            "label-semantic", "train")


class ConfigError(AigError, ValueError):
    """A configuration value is invalid; the message names the key and the fix."""


@dataclass
class InputConfig:
    folders: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    embedded: bool = False  # set when no other input is given
    # lists (img2dataset-compatible): format by extension unless set; the column naming images/URLs and captions
    list_format: str | None = None
    url_col: str | None = None  # default: the first of url, path, image, file, filepath, filename
    caption_col: str = "caption"


@dataclass
class DownloadConfig:
    """http(s) inputs (URL lists): how they are fetched."""

    timeout: float = 10.0  # seconds to connect and between bytes
    retries: int = 3  # on connection errors, 429 and 5xx, with exponential backoff
    backoff: float = 0.5  # seconds before the 2nd try; doubles with each retry (a Retry-After header wins)
    max_bytes: int = 50_000_000  # a larger body is a failure (too_large)
    user_agent: str | None = None  # default: aig/VERSION (image dataset builder)
    # X-Robots-Tag directives that opt an image out (reason opted_out); empty list = ignore the header
    disallowed_header_directives: list[str] = field(default_factory=lambda: ["noai", "noimageai", "noindex", "noimageindex"])


@dataclass
class IngestConfig:
    # native: native pixels, centre-cropped (never resized) to at most size x size; cap: native aspect, downscaled
    # to longest side <= size; center-crop: central square resized to size
    policy: str = "native"
    size: int | None = None  # None: DEFAULT_SIZE of the policy
    min_size: int = 32  # shorter side below this is rejected as too_small
    max_pixels: int = 89_478_485  # Pillow's decompression-bomb default
    image_format: str = "png"
    jpeg_quality: int = 95
    keep_input: bool = True  # an image canonicalisation leaves as is keeps its own bytes (JPEG, or PNG when png)
    animated: str = "reject"  # animations are rejected (the only supported policy)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    near_dup: str = "group"  # group: near-duplicates share a group (and split) | drop: they fail | off
    near_dup_distance: int = 10  # pHash bits (of 64) within which two images are near-duplicates

    def resolved_size(self) -> int:
        return self.size or DEFAULT_SIZE[self.policy]


@dataclass
class ReconstructConfig:
    """Pixel task: real/reconstruction pairs through diffusers autoencoders."""

    # "ID", "ID:SUBFOLDER" or a table {model, subfolder, revision, name}
    autoencoders: list = field(default_factory=lambda: ["embedded"])
    latent: str = "sample"  # sample (seeded per pair) | mode
    # auto (= jpeg-matched): both at the real's own JPEG quality when it came as JPEG, else both PNG | png: both lossless
    pair_format: str = "auto"
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
    pair_format: str = "auto"
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
    width: int | None = None  # None: the pipeline's native side (its denoiser's sample size x the VAE factor)
    height: int | None = None
    # source: each fake at its source real's aspect ratio, at width x height pixels of area (rounded to the
    # pipeline's multiple; prompts without a source image stay width x height) | fixed: width x height
    aspect: str = "source"
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
        for how in ("timeout", "retries", "backoff", "user_agent"):  # how inputs are fetched, not which
            d["ingest"]["download"].pop(how)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def type_error(key: str, value: Any, hint: Any) -> str | None:
    """Why `value` does not fit the annotation `hint` (None when it does); TOML values are already typed."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = [type_error(key, value, a) for a in args if a is not type(None)]
        return None if any(e is None for e in errors) else errors[0]
    if hint is Any:
        return None
    if origin is typing.Literal:
        return None if value in args else f"config key '{key}' must be one of {', '.join(map(str, args))}, got {value!r}"
    if hint is Path:
        hint = str
    if hint is list or origin is list:
        if not isinstance(value, list):
            return f"config key '{key}' must be a list, got {value!r}"
        for v in value:
            if args and (err := type_error(key, v, args[0])):
                return err.replace("must be", "must hold")
        return None
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str)}
    if hint in ok and not ok[hint](value):
        return f"config key '{key}' must be {names[hint]}, got {value!r}"
    return None


def _merge(obj: Any, values: dict[str, Any], where: str) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    hints = typing.get_type_hints(type(obj))
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{where}{key}'; known: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}{key}' is a section: write it as [{where}{key}]")
            _merge(current, value, f"{where}{key}.")
        else:
            if err := type_error(f"{where}{key}", value, hints[key]):
                raise ConfigError(err)
            setattr(obj, key, value)


LEGACY = "(top-level build-data keys)"


def read_toml(path: str | Path) -> dict[str, Any]:
    """A config file's tables; a file without command tables is build-data's (its keys at the top level)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file '{p}' does not exist")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file '{p}' is not valid TOML: {e}") from None
    build_keys = {f.name for f in dataclasses.fields(BuildConfig)}
    legacy = not any(k in COMMANDS for k in data)
    for k, v in data.items():
        if legacy and k in build_keys:
            continue
        if k not in COMMANDS:
            hint = " (build-data keys go under [build-data])" if k in build_keys else ""
            raise ConfigError(f"config file '{p}': unknown table [{k}]{hint}; tables are commands: {', '.join(COMMANDS)}")
        if not isinstance(v, dict):
            raise ConfigError(f"config file '{p}': '{k}' must be a table [{k}]")
    return {"build-data": data, LEGACY: True} if legacy and data else data


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """Defaults, then the file's [build-data] table, then dotted overrides like {"ingest.size": 256} (None values ignored)."""
    cfg = BuildConfig()
    if path is not None:
        tables = read_toml(path)
        _merge(cfg, tables.get("build-data", {}), "" if LEGACY in tables else "build-data.")
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
    if cfg.ingest.size is None and cfg.ingest.policy in DEFAULT_SIZE:
        cfg.ingest.size = cfg.ingest.resolved_size()
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
    if ing.near_dup not in ("group", "drop", "off"):
        raise ConfigError(f"ingest.near_dup '{ing.near_dup}' unknown; use group, drop or off")
    if not 0 <= ing.near_dup_distance <= 32:
        raise ConfigError("ingest.near_dup_distance must be within 0..32 (bits of a 64-bit pHash)")
    if cfg.shards.samples_per_shard < 1 or cfg.shards.max_shard_bytes < 1024:
        raise ConfigError("shards.samples_per_shard must be >= 1 and shards.max_shard_bytes >= 1024")
    s = cfg.split
    if min(s.train, s.val, s.test) < 0 or abs(s.train + s.val + s.test - 1.0) > 1e-6:
        raise ConfigError(f"split ratios must be >= 0 and sum to 1 (got {s.train}, {s.val}, {s.test})")
    fmt = cfg.inputs.list_format
    if fmt is not None and fmt not in LIST_FORMATS:
        raise ConfigError(f"inputs.list_format '{fmt}' unknown; use one of {', '.join(LIST_FORMATS)}")
    dl = ing.download
    if dl.timeout <= 0 or dl.retries < 0 or dl.backoff < 0 or dl.max_bytes < 1:
        raise ConfigError("ingest.download: timeout must be > 0, retries and backoff >= 0, max_bytes >= 1")
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
    if (gen.width or 8) % 8 or (gen.height or 8) % 8 or gen.steps < 1 or gen.images_per_prompt < 1:
        raise ConfigError("generate.width/height must be multiples of 8; steps and images_per_prompt >= 1")
    if gen.aspect not in ("source", "fixed"):
        raise ConfigError(f"generate.aspect '{gen.aspect}' unknown; use source or fixed")
    if cfg.runner.workers < 0 or cfg.runner.max_retries < 0:
        raise ConfigError("runner.workers and runner.max_retries must be >= 0")
