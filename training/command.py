"""The `aig train` typer command: options -> the branch's config -> aig.training.run.run. Imports nothing heavy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from aig.pipeline.cli_config import ConfigOpt

O = typer.Option


def _range(text: Optional[str], name: str, cast=float):
    if text is None:
        return None
    try:
        lo, hi = (cast(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{name} takes 'LOW,HIGH', got {text!r}") from None
    return [lo, hi]


def train(
    branch: Annotated[Literal["pixel", "semantic"], O(help="pixel (timm backbone on real/reconstruction pairs) or semantic (VLM + LoRA SFT).")] = "pixel",
    dataset: Annotated[Path, O("--dataset", "-d", help="Dataset folder.")] = Path("aig-data/default"),
    output: Annotated[Optional[Path], O("--output", "-o", help="Run folder (default: aig-runs/BRANCH).")] = None,
    model: Annotated[Optional[str], O(help="pixel: timm model name (default aig_tinycnn); semantic: VLM hub id or local path.")] = None,
    pretrained: Annotated[Optional[str], O(help="pixel: initial weights: a local .safetensors/.bin file or folder, 'hub' (timm's), or 'none'.")] = None,
    lora_rank: Annotated[Optional[int], O(help="LoRA rank (0 = full fine-tune; pixel default 0, semantic default 8).")] = None,
    lora_alpha: Annotated[Optional[float], O(help="LoRA alpha.")] = None,
    lora_targets: Annotated[Optional[str], O(help="Comma-separated module-name suffixes for LoRA (default: pixel: all Linear/Conv2d except the head; semantic: the language model's Linear layers).")] = None,
    max_steps: Annotated[Optional[int], O(help="Optimizer steps (overrides --epochs).")] = None,
    epochs: Annotated[Optional[float], O(help="Passes over the training pairs/records.")] = None,
    batch_size: Annotated[Optional[int], O(help="pixel: crop pairs per step and rank (x2 images); semantic: records per step.")] = None,
    grad_accum: Annotated[Optional[int], O(help="Gradient accumulation micro-batches per step.")] = None,
    lr: Annotated[Optional[float], O(help="Peak learning rate (linear warm-up, then cosine).")] = None,
    weight_decay: Annotated[Optional[float], O(help="AdamW weight decay.")] = None,
    warmup_steps: Annotated[Optional[int], O(help="Warm-up steps.")] = None,
    seed: Annotated[Optional[int], O(help="Seed of initialisation, data order and augmentation.")] = None,
    crop_size: Annotated[Optional[int], O(help="pixel: crop size in pixels (no resizing; default 64, 336 for DINOv2).")] = None,
    crops_per_pair: Annotated[Optional[int], O(help="pixel: crops drawn per decoded pair.")] = None,
    flip_p: Annotated[Optional[float], O(help="pixel: horizontal flip probability.")] = None,
    jpeg_p: Annotated[Optional[float], O(help="pixel: JPEG re-encoding probability.")] = None,
    jpeg_quality: Annotated[Optional[str], O(help="pixel: JPEG quality range 'LOW,HIGH'.")] = None,
    blur_p: Annotated[Optional[float], O(help="pixel: Gaussian blur probability.")] = None,
    blur_sigma: Annotated[Optional[str], O(help="pixel: blur sigma range 'LOW,HIGH'.")] = None,
    resample_p: Annotated[Optional[float], O(help="pixel: down/up-sampling probability (before the crop).")] = None,
    resample_scale: Annotated[Optional[str], O(help="pixel: resampling scale range 'LOW,HIGH'.")] = None,
    loader_workers: Annotated[Optional[int], O(help="pixel: DataLoader worker processes per rank (0 = in-process).")] = None,
    shuffle_buffer: Annotated[Optional[int], O(help="pixel: shuffle buffer (pairs).")] = None,
    calib_fraction: Annotated[Optional[float], O(help="pixel: train pairs held back to calibrate the threshold.")] = None,
    calibrate_on: Annotated[Optional[Literal["holdout", "val", "both"]], O(help="pixel: set the threshold on the held-back train pairs (holdout), the val split (val) or both.")] = None,
    val_every: Annotated[Optional[int], O(help="Validate every N steps (0 = at the end).")] = None,
    save_every: Annotated[Optional[int], O(help="Checkpoint every N steps (0 = at the end).")] = None,
    log_every: Annotated[Optional[int], O(help="Write metrics every N steps.")] = None,
    device: Annotated[Optional[str], O(help="auto, cpu, cuda or cuda:N.")] = None,
    amp: Annotated[Optional[Literal["auto", "bf16", "fp16", "off"]], O(help="Mixed precision on GPU: auto (bf16), bf16, fp16, off.")] = None,
    threads: Annotated[Optional[int], O(help="torch CPU threads (0 = default).")] = None,
    num_workers: Annotated[Optional[int], O(help="Ray Train workers (DDP); 0/1 = this process only.")] = None,
    ray_address: Annotated[Optional[str], O(help="Existing Ray cluster for --num-workers.")] = None,
    resume: Annotated[bool, O("--resume", help="Continue from OUTPUT/checkpoints/last with the same settings.")] = False,
    gradient_checkpointing: Annotated[bool, O("--gradient-checkpointing", help="semantic: trade compute for memory.")] = False,
    merge: Annotated[bool, O("--merge", help="semantic: also write the LoRA-merged model to OUTPUT/merged.")] = False,
    max_length: Annotated[Optional[int], O(help="semantic: max tokens per record.")] = None,
    progress: Annotated[bool, O("--progress/--no-progress", help="Show a progress bar.")] = True,
    log_with: Annotated[Optional[list[str]], O(help="Also log metrics to: tensorboard (event files beside metrics.jsonl; pip install 'aig[tensorboard]'). Repeatable.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Train a branch from the dataset's shards: pixel (real/reconstruction pairs) or semantic (VLM SFT)."""
    import json

    from .metrics import finite
    from .run import config_from_options, run

    options = dict(
        dataset=str(dataset), output=str(output or Path("aig-runs") / branch), model=model, pretrained=pretrained,
        lora_rank=lora_rank, lora_alpha=lora_alpha,
        lora_targets=[t for t in lora_targets.split(",") if t] if lora_targets else None,
        max_steps=max_steps, epochs=epochs, batch_size=batch_size, grad_accum=grad_accum, lr=lr,
        weight_decay=weight_decay, warmup_steps=warmup_steps, seed=seed, crop_size=crop_size,
        crops_per_pair=crops_per_pair, flip_p=flip_p, jpeg_p=jpeg_p,
        jpeg_quality=_range(jpeg_quality, "--jpeg-quality", int), blur_p=blur_p,
        blur_sigma=_range(blur_sigma, "--blur-sigma"), resample_p=resample_p,
        resample_scale=_range(resample_scale, "--resample-scale"), loader_workers=loader_workers,
        shuffle_buffer=shuffle_buffer, calib_fraction=calib_fraction, calibrate_on=calibrate_on, val_every=val_every, save_every=save_every,
        log_every=log_every, device=device, amp=amp, threads=threads, num_workers=num_workers,
        ray_address=ray_address, resume=resume or None, progress=progress,
        gradient_checkpointing=gradient_checkpointing or None, merge=merge or None, max_length=max_length,
        log_with=log_with or None,
    )
    report = run(config_from_options(branch, options))
    typer.echo(json.dumps(finite(report.to_dict()), indent=1, default=str))
