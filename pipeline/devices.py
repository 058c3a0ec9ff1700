"""Where and how a model worker runs: device, dtype, torch threads."""

from __future__ import annotations

DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def torch_setup(dtype_name: str, threads: int):
    """(device, dtype, threads): float16 on GPU and float32 on CPU for 'auto'; CPU thread count fixed and
    recorded, since CPU results can depend on it."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(threads)
    else:  # deterministic kernels, so `aig regenerate` gives the same bytes on the same GPU
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    if dtype_name == "auto":
        dtype = torch.float16 if device == "cuda" else torch.float32
    else:
        dtype = getattr(torch, DTYPES[dtype_name])
    return device, dtype, torch.get_num_threads()


def versions() -> dict:
    """Versions of the libraries a generated sample depends on: package metadata, else the module's __version__
    (a library carried as a bare folder has no metadata)."""
    import importlib
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("diffusers", "torch"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = importlib.import_module(name).__version__
    return out
