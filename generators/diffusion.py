"""Loading diffusers pipelines by hub id or local path, with a fast, clear failure."""

from __future__ import annotations

from .autoencoder import ModelLoadError, load_error, read_model_json


def check_pipeline(model: str, revision: str | None = None) -> dict:
    """Read the pipeline's model_index.json only: a bad id fails in seconds, before any worker starts."""
    return read_model_json("pipeline", model, "model_index.json", None, revision)


def load_pipeline(model: str, revision: str | None, device: str, dtype, scheduler: str | None,
                  safety_checker: bool):
    import diffusers
    from diffusers import DiffusionPipeline

    index = check_pipeline(model, revision)
    kwargs = {"torch_dtype": dtype, "revision": revision or None}
    if "safety_checker" in index and not safety_checker:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        pipe = DiffusionPipeline.from_pretrained(model, **kwargs)
    except Exception as e:
        raise load_error("pipeline", model, e) from None
    if scheduler:
        cls = getattr(diffusers, scheduler, None)
        if cls is None or not hasattr(cls, "from_config"):
            raise ModelLoadError(f"unknown scheduler '{scheduler}': name a diffusers scheduler class, "
                                 "e.g. DPMSolverMultistepScheduler")
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device), index.get("_commit_hash")
