"""Train the small diffusers AutoencoderKL bundled as the embedded default reconstructor.

    python -m aig.generators.train_tiny_vae --steps 1500 --out generators/assets/tiny-vae

Trains (a fixed number of steps, so the result does not depend on machine load) on random 32 px crops of the bundled photos (all but the held-out ones), then reports the
reconstruction PSNR on 64 px crops of the held-out photos. A random-weight decoder outputs noise;
this one leaves a real (if strong) autoencoder fingerprint in a few CPU minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

HELD_OUT = ("coffee.png", "rocket.jpg", "chelsea.png")  # PSNR is measured on these

TINY_VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    block_out_channels=(32, 64, 64), layers_per_block=1, mid_block_add_attention=False,
    sample_size=32,  # = training crop: diffusers tiles larger images at this size (GroupNorm statistics match training)
)


def _photos(names_out: tuple[str, ...], held_out: bool) -> list[np.ndarray]:
    from PIL import Image

    from aig.pipeline.sources import embedded_list, from_list

    arrays = []
    for item in from_list(str(embedded_list()), origin="embedded"):
        name = Path(item.file).name
        if (name in names_out) == held_out:
            arrays.append(np.asarray(Image.open(item.file).convert("RGB"), dtype=np.float32) / 127.5 - 1.0)
    return arrays


def _crops(photos: list[np.ndarray], n: int, size: int, rng: np.random.Generator):
    import torch

    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        p = photos[rng.integers(len(photos))]
        y, x = rng.integers(p.shape[0] - size + 1), rng.integers(p.shape[1] - size + 1)
        crop = p[y:y + size, x:x + size].transpose(2, 0, 1)
        out[i] = crop[:, :, ::-1] if rng.random() < 0.5 else crop
    return torch.from_numpy(out)


def psnr(vae, photos: list[np.ndarray], size: int = 64, n: int = 96, seed: int = 1) -> float:
    import torch

    x = _crops(photos, n, size, np.random.default_rng(seed))
    with torch.no_grad():
        y = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    mse = torch.mean(((y - x) / 2) ** 2).item()
    return 10 * math.log10(1.0 / mse)


def full_photo_psnr(path: Path) -> float:
    """PSNR on the whole held-out photos, through the same code path the reconstruct stage uses."""
    import torch

    from .autoencoder import load_autoencoder, reconstruct

    ae = load_autoencoder(str(path), None, None, "cpu", torch.float32)
    errors = []
    for photo in _photos(HELD_OUT, True):
        h, w = photo.shape[0] // ae.factor * ae.factor, photo.shape[1] // ae.factor * ae.factor
        x = torch.from_numpy(photo[:h, :w].transpose(2, 0, 1).copy())[None]
        y = reconstruct(ae, x, [0], "mode", tile=max(h, w) > ae.sample_size)
        errors.append(torch.mean(((y - x) / 2) ** 2).item())
    return 10 * math.log10(1.0 / (sum(errors) / len(errors)))


def train(out: Path, steps: int, seed: int = 0, crop: int = 32, batch: int = 16, lr: float = 2e-3) -> dict:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_photos, test_photos = _photos(HELD_OUT, False), _photos(HELD_OUT, True)
    vae = AutoencoderKL(**TINY_VAE_CONFIG)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    torch.set_num_threads(1)
    start = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:  # cosine schedule
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        x = _crops(train_photos, batch, crop, rng)
        posterior = vae.encode(x).latent_dist
        y = vae.decode(posterior.sample()).sample
        loss = torch.nn.functional.l1_loss(y, x) + 1e-4 * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    vae.eval()
    result = {"steps": steps, "cpu_seconds_1_thread": round(time.perf_counter() - start), "crop": crop, "batch": batch, "lr": lr, "seed": seed,
              "held_out": list(HELD_OUT), "psnr_db_heldout_64px": round(psnr(vae, test_photos), 2),
              "params": sum(p.numel() for p in vae.parameters())}
    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(out, safe_serialization=True)
    result["psnr_db_heldout_full_photos"] = round(full_photo_psnr(out), 2)
    (out / "training.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "assets" / "tiny-vae")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(json.dumps(train(args.out, args.steps, args.seed), indent=1))


if __name__ == "__main__":
    main()
