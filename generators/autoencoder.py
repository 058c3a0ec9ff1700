"""Autoencoder reconstructions (encode -> decode, no denoising) with any diffusers autoencoder."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from aig.pipeline import hub
from aig.pipeline.hub import ModelLoadError, load_error

EMBEDDED = "embedded"
DECODER_SEED = 0x5EED  # mixed into a sample's seed for decoder noise, so it differs from the latent noise


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
    video: bool = False  # a video autoencoder (3D convolutions): images go in and out as one-frame videos
    native_tiling: bool = False  # the class tiles by itself (enable_tiling); otherwise aig tiles
    decoder_noise: bool = False  # the decoder draws noise (ConsistencyDecoderVAE): seeded per sample
    timestep: bool = False  # the decoder is timestep-conditioned (LTX-Video 0.9.1+): decoded at timestep 0
    upcast: str | None = None  # why it runs in float32 rather than the asked dtype ('force_upcast')


def read_model_json(kind: str, model: str, filename: str, subfolder: str | None = None,
                    revision: str | None = None) -> dict:
    """`aig.pipeline.hub.read_model_json` with the name 'embedded' meaning the bundled autoencoder."""
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


def load_dtype(config: dict, dtype):
    """(dtype to load in, upcast reason): float32 for a float16 run when the config says `force_upcast`,
    as diffusers pipelines do (the SDXL VAE overflows in float16)."""
    import torch

    if dtype == torch.float16 and config.get("force_upcast"):
        return torch.float32, "force_upcast"
    return dtype, None


def load_autoencoder(model: str, subfolder: str | None, revision: str | None, device: str, dtype,
                     honour_upcast: bool = True) -> LoadedAutoencoder:
    """Load and probe (encode and decode one 64x64 image): a class aig cannot drive fails here, in one line."""
    import inspect

    import torch

    config, cls = check_autoencoder(model, subfolder, revision)
    class_name = cls.__name__
    dtype, upcast = load_dtype(config, dtype) if honour_upcast else (dtype, None)
    try:
        vae = cls.from_pretrained(resolve_model(model), torch_dtype=dtype, subfolder=subfolder or None,
                                  revision=revision or None).to(device).eval()
    except Exception as e:
        raise load_error("autoencoder", model, e) from None
    sample_size = config.get("sample_size") or config.get("sample_height") or 10**9
    sample_size = sample_size[0] if isinstance(sample_size, (list, tuple)) else int(sample_size)
    ae = LoadedAutoencoder(
        vae, class_name, 1, False, config.get("_commit_hash"), sample_size,
        video=any(isinstance(m, torch.nn.Conv3d) for m in vae.modules()),
        native_tiling=hasattr(vae, "use_tiling"),
        decoder_noise="generator" in inspect.signature(vae.decode).parameters,
        timestep=bool(config.get("timestep_conditioning")), upcast=upcast,
    )
    try:
        with torch.no_grad():
            z, posterior = _encode(ae, torch.zeros(1, 3, 64, 64, device=device, dtype=dtype))
            _decode(ae, z, [0])
    except Exception as e:
        detail = (str(e).strip().splitlines() or [""])[0]
        raise ModelLoadError(f"autoencoder '{model}' ({class_name}) fails the probe (encode and decode of a 64x64 "
                             f"image): {type(e).__name__}: {detail}. aig drives diffusers autoencoders with "
                             "encode(x) -> latent_dist, latents or latent, and decode(z).sample") from None
    return replace(ae, factor=64 // z.shape[-1], has_posterior=posterior is not None)


def _encode(ae: LoadedAutoencoder, images):
    """(latent, posterior or None); the posterior's mode is the latent."""
    enc = ae.model.encode(images.unsqueeze(2) if ae.video else images)
    if hasattr(enc, "latent_dist"):
        return enc.latent_dist.mode(), enc.latent_dist
    return (enc.latents if hasattr(enc, "latents") else enc.latent), None


def _decode(ae: LoadedAutoencoder, z, seeds: list[int]):
    import torch

    kwargs = {}
    if ae.decoder_noise:  # one generator per sample: the same image decodes the same in any batch
        kwargs["generator"] = [torch.Generator("cpu").manual_seed(s ^ DECODER_SEED) for s in seeds]
    if ae.timestep:
        kwargs["temb"] = torch.zeros(z.shape[0], device=z.device, dtype=z.dtype)
    out = ae.model.decode(z, **kwargs).sample
    return out[:, :, 0] if ae.video else out


def crop_to_multiple(width: int, height: int, factor: int) -> tuple[int, int, int, int]:
    """Centre crop box (left, top, right, bottom) making both sides multiples of factor; its offsets keep a
    JPEG source's block grid in phase (jpeg-matched pairs then re-encode on the source's own grid)."""
    from aig.pipeline.decode import center_box

    return center_box(width, height, width // factor * factor, height // factor * factor)


def reconstruct(ae: LoadedAutoencoder, images, seeds: list[int], latent: str, tile: bool = False):
    """images: float tensor N,3,H,W in [-1, 1]. Sampled latents use one torch.Generator per sample.

    The result is float32 on the model's device, clamped to [-1, 1]; non-finite values (a float16 overflow)
    come back as NaN.
    """
    import torch

    if tile and not ae.native_tiling:
        out = tiled(lambda x, s: _reconstruct(ae, x, s, latent, False), images, seeds, ae.sample_size, ae.factor)
    else:
        out = _reconstruct(ae, images, seeds, latent, tile)
    out = out.float()
    return torch.where(torch.isfinite(out), out.clamp(-1, 1), torch.full_like(out, float("nan")))


def _reconstruct(ae: LoadedAutoencoder, images, seeds: list[int], latent: str, tile: bool):
    import torch

    vae = ae.model
    if tile:
        vae.enable_tiling()
    try:
        with torch.no_grad():
            z, dist = _encode(ae, images.to(vae.device, vae.dtype))
            if dist is not None and latent == "sample":
                noise = torch.stack([
                    torch.randn(dist.mean.shape[1:], generator=torch.Generator("cpu").manual_seed(s), dtype=torch.float32)
                    for s in seeds
                ])
                if dist.mean.device.type == "cuda":  # from pinned memory the copy does not wait for the encoder
                    noise = noise.pin_memory()
                noise = noise.to(dist.mean.device, non_blocking=True).to(dist.mean.dtype)
                z = dist.mean + dist.std * noise
            return _decode(ae, z, seeds)
    finally:
        if tile:
            vae.disable_tiling()


def tile_starts(length: int, tile: int, factor: int) -> list[int]:
    """Starts of tiles of `tile` pixels covering `length`, overlapping by about a quarter, on multiples of factor."""
    if length <= tile:
        return [0]
    stride = max(factor, (tile - tile // 4) // factor * factor)
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def tile_weights(size: int, ramp: int):
    """1-D blending weights of a tile: a linear ramp over `ramp` pixels at both ends, never zero."""
    import torch

    x = torch.arange(size, dtype=torch.float32) + 0.5
    return torch.minimum(torch.ones(size), torch.minimum(x, size - x) / max(ramp, 1))


def tiled(fn, images, seeds: list[int], tile: int, factor: int):
    """fn(tile images, seeds) over overlapping tiles of at most `tile` pixels, blended linearly: for classes
    that cannot tile themselves. Tile k of a sample draws its noise from that sample's seed + k."""
    import torch

    tile = max(factor, tile // factor * factor)
    n, _, h, w = images.shape
    ys, xs = tile_starts(h, tile, factor), tile_starts(w, tile, factor)
    acc = weight = None
    for k, (y, x) in enumerate((y, x) for y in ys for x in xs):
        th, tw = min(tile, h), min(tile, w)
        out = fn(images[:, :, y:y + th, x:x + tw], [s + k for s in seeds]).float()
        if acc is None:
            acc = torch.zeros(n, out.shape[1], h, w, device=out.device)
            weight = torch.zeros(1, 1, h, w, device=out.device)
        wt = (tile_weights(th, tile // 4)[:, None] * tile_weights(tw, tile // 4)[None, :])[None, None].to(out.device)
        acc[:, :, y:y + th, x:x + tw] += out * wt
        weight[:, :, y:y + th, x:x + tw] += wt
    return acc / weight


def describe(ae: LoadedAutoencoder, model: str, subfolder: str | None, revision: str | None) -> dict:
    return {"model_id": model, "resolved": resolve_model(model), "subfolder": subfolder, "revision": revision,
            "commit": ae.commit, "class": ae.class_name, "factor": ae.factor}
