"""The options of `aig label-semantic` (light to import: the command line reads its defaults here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aig.manifests.errors import AigError
from aig.pipeline.config import DEFAULT_OUTPUT


class LabelError(AigError, RuntimeError):
    """Labelling cannot start; the message says why and what to do."""


@dataclass(kw_only=True)
class LabelOptions:
    """The command's options (see `aig label-semantic --help`)."""
    dataset: Path = Path(DEFAULT_OUTPUT)
    model: str | None = None  # hub id or local path (transformers), or the served model's name (openai)
    backend: str = "transformers"
    revision: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    concurrency: int = 4
    timeout: float = 120.0
    http_retries: int = 5
    max_response_bytes: int = 16 * 1024 * 1024
    max_failed_fraction: float = 0.25
    caption: bool = False
    prompt_version: str = "v1"
    prompt_file: Path | None = None
    min_confidence: float = 0.5
    min_inconsistencies: int = 1
    quarantine_reals: bool = True
    max_new_tokens: int = 512
    temperature: float = 0.0
    seed: int = 0
    constrained: bool = True
    max_attempts: int = 3
    batch_size: int = 8
    chunk_size: int = 64
    splits: str | None = None  # comma-separated
    where: str | None = None
    limit: int | None = None
    dtype: str = "auto"
    executor: str = "ray"
    ray_address: str | None = None
    workers: int = 0
    gpus_per_worker: float = -1.0

    def check(self) -> None:
        if not self.model:
            raise LabelError("name the annotator with --model: a hub id or local folder (e.g. Qwen/Qwen2.5-VL-7B-Instruct), "
                             "or the served model's name with --backend openai")
        if self.backend not in ("transformers", "openai"):
            raise LabelError(f"--backend {self.backend!r} unknown; use transformers or openai")
        if not 0 <= self.max_failed_fraction <= 1:
            raise LabelError(f"--max-failed-fraction {self.max_failed_fraction:g} must be between 0 and 1")
        if self.executor not in ("ray", "local"):
            raise LabelError(f"--executor {self.executor!r} unknown; use ray or local")
