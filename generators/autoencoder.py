"""Autoencoder reconstructions (encode -> decode, no denoising) with any diffusers autoencoder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline import hub
from pipeline.hub import ModelLoadError, load_error

EMBEDDED = "embedded"


def embedded_vae_path() -> Path:
    return Path(__file__).resolve().parent / "assets" / "tiny-vae"


def resolve_model(model: str) -> str:
    return str(embedded_vae_path()) if model == EMBEDDED else model


@dataclass(frozen=True)
class LoadedAutoencoder:
    model: object
    class_name: str
    factor: int  # spatial downscale factor
    has_posterior: bool  # sampled latents possible (AutoencoderKL-like)
    commit: str | None
    sample_size: int  # the model's native resolution: larger images are encoded/decoded in tiles of this size


def read_model_json(kind: str, model: str, filename: str, subfolder: str | None = None,
                    revision: str | None = None) -> dict:
    """`pipeline.hub.read_model_json` with the name 'embedded' meaning the bundled autoencoder."""
    return hub.read_model_json(kind, model, filename, subfolder, revision, path=resolve_model(model))


def check_autoencoder(model: str, subfolder: str | None, revision: str | None) -> tuple[dict, type]:
    """The model's config and the diffusers class that loads it."""
    import diffusers

    config = read_model_json("autoencoder", model, "config.json", subfolder, revision)
    class_name = config.get("_class_name", "AutoencoderKL")
    cls = getattr(diffusers, class_name, None)
    if cls is None or not hasattr(cls, "encode") or not hasattr(cls, "decode"):
        raise ModelLoadError(f"'{model}' holds a {class_name}, not an image autoencoder that diffusers can load")
    return config, cls


def load_autoencoder(model: str, subfolder: str | None, revision: str | None, device: str, dtype) -> LoadedAutoencoder:
    import torch

    config, cls = check_autoencoder(model, subfolder, revision)
    class_name = cls.__name__
    try:
        vae = cls.from_pretrained(resolve_model(model), torch_dtype=dtype, subfolder=subfolder or None,
                                  revision=revision or None).to(device).eval()
    except Exception as e:
        raise load_error("autoencoder", model, e) from None
    with torch.no_grad():
        probe = torch.zeros(1, 3, 64, 64, device=device, dtype=dtype)
        enc = vae.encode(probe)
        latent = enc.latent_dist.mode() if hasattr(enc, "latent_dist") else enc.latents
    sample_size = config.get("sample_size") or 10**9
    sample_size = sample_size[0] if isinstance(sample_size, (list, tuple)) else int(sample_size)
    return LoadedAutoencoder(vae, class_name, 64 // latent.shape[-1], hasattr(enc, "latent_dist"),
                             config.get("_commit_hash"), sample_size)


def crop_to_multiple(width: int, height: int, factor: int) -> tuple[int, int, int, int]:
    """Centre crop box (left, top, right, bottom) making both sides multiples of factor."""
    w, h = width // factor * factor, height // factor * factor
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def reconstruct(ae: LoadedAutoencoder, images, seeds: list[int], latent: str, tile: bool = False):
    """images: float tensor N,3,H,W in [-1, 1]. Sampled latents use one torch.Generator per sample."""
    import torch

    vae = ae.model
    if tile and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
    with torch.no_grad():
        enc = vae.encode(images.to(vae.device, vae.dtype))
        if ae.has_posterior:
            dist = enc.latent_dist
            if latent == "sample":
                noise = torch.stack([
                    torch.randn(dist.mean.shape[1:], generator=torch.Generator("cpu").manual_seed(s), dtype=torch.float32)
                    for s in seeds
                ]).to(dist.mean.device, dist.mean.dtype)
                z = dist.mean + dist.std * noise
            else:
                z = dist.mode()
        else:
            z = enc.latents
        out = vae.decode(z).sample
    if tile and hasattr(vae, "disable_tiling"):
        vae.disable_tiling()
    return out.float().clamp(-1, 1).cpu()


def describe(ae: LoadedAutoencoder, model: str, subfolder: str | None, revision: str | None) -> dict:
    return {"model_id": model, "resolved": resolve_model(model), "subfolder": subfolder, "revision": revision,
            "commit": ae.commit, "class": ae.class_name, "factor": ae.factor}

