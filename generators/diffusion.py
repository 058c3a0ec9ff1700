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


def run_checked(pipe, dtype, call, references: list | None = None):
    """call() -> float images N,H,W,3 in [0, 1] (output_type 'np'), checked for non-finite and flat images.

    A batch with non-finite values from a non-float32 pipeline runs once more with the pipeline in float32.
    Returns (PIL images, None where a problem; problems; upcast reason or None).
    """
    import numpy as np
    import torch
    from diffusers.image_processor import VaeImageProcessor

    from .output_checks import NON_FINITE, batch_problems

    refs = None if references is None else torch.from_numpy(np.stack(references)).permute(0, 3, 1, 2)

    def checked():
        images = call()
        return images, batch_problems(torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2), refs)

    images, problems = checked()
    upcast = None
    if NON_FINITE in problems and dtype != torch.float32:
        pipe.to(torch.float32)
        try:
            images, problems = checked()
        finally:
            pipe.to(dtype)
        upcast = NON_FINITE
    pils = [None if p else VaeImageProcessor.numpy_to_pil(im[None])[0] for im, p in zip(images, problems)]
    return pils, problems, upcast
