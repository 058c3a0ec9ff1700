"""The pixel-branch training loop (one process, or one rank of a Ray Train DDP run)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from pathlib import Path

from .config import ConfigError, PixelConfig
from .shards import DataError

RESUME_IGNORED = {"resume", "progress", "ray_address", "val_every", "save_every", "log_every", "log_with", "output"}


def calibration_pairs(pair_ids: list[str], fraction: float, seed: int) -> frozenset:
    """Train pairs held back for threshold calibration: the lowest hashes, ceil(fraction*n), leaving >= 1."""
    if fraction <= 0 or len(pair_ids) < 2:
        return frozenset()
    n = min(len(pair_ids) - 1, max(1, math.ceil(fraction * len(pair_ids))))
    ranked = sorted(pair_ids, key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).hexdigest())
    return frozenset(ranked[:n])


def total_steps(cfg: PixelConfig, n_pairs: int, world: int) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    per_step = cfg.batch_size * cfg.grad_accum * world
    return max(1, math.ceil(cfg.epochs * n_pairs * cfg.crops_per_pair / per_step))


def _pair_ids(root: Path, split: str) -> list[str]:
    from .shards import _rows

    return [r[0] for r in _rows(root, "select distinct pair_id from samples where task = 'pixel' "
                                      f"and split = '{split}' and pair_id is not null order by 1")]


def _device(cfg: PixelConfig, local_rank: int):
    import torch

    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {cfg.device}: no CUDA device here; use --device cpu")
    return torch.device(cfg.device)


def evaluate_pairs(model, export_cfg: dict, pairs: list[tuple], device) -> dict:
    """AUROC and balanced accuracy (at export_cfg['threshold'] and at 0.5) over (id, real, fake) pairs."""
    from .checkpoint import score_images
    from .metrics import auroc, balanced_accuracy

    imgs = [im for _, r, f in pairs for im in (r, f)]
    labels = [0, 1] * len(pairs)
    s = score_images(model, export_cfg, imgs, device=device)
    return {"pairs": len(pairs), "auroc": auroc(s, labels),
            "balanced_accuracy": balanced_accuracy(s, labels, export_cfg["threshold"]),
            "balanced_accuracy_at_0.5": balanced_accuracy(s, labels, 0.5)}


def calibrate(model, export_cfg: dict, pairs: list[tuple], device) -> float:
    """Threshold maximising balanced accuracy over the pairs' image scores, the statistic the decision uses
    (the middle of the best plateau; 0.5 without pairs)."""
    from .checkpoint import score_images
    from .metrics import best_threshold

    if not pairs:
        return 0.5
    s = score_images(model, export_cfg, [im for _, r, f in pairs for im in (r, f)], device=device)
    return best_threshold(s, [0, 1] * len(pairs))


def _gather(obj, world: int) -> list:
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def run_pixel(cfg: PixelConfig, rank: int = 0, world: int = 1, local_rank: int = 0, echo=print) -> dict:
    """Train; rank 0 writes metrics, checkpoints and the export. Returns the final summary (rank 0)."""
    import torch
    from tqdm import tqdm

    from . import state as st
    from .checkpoint import save_pixel_export
    from .metrics import MetricsLog
    from .models import apply_lora, create_backbone, normalisation
    from .pixel_stream import StreamSpec, make_loader, read_pairs
    from .schedule import lr_at
    from .shards import run_ids, split_shards

    cfg.validate()
    root, out = Path(cfg.dataset), Path(cfg.output)
    ckdir = out / "checkpoints" / "last"
    meta = None
    if cfg.resume:  # checked first: a refused resume costs nothing
        if not (ckdir / "state.json").is_file():
            raise ConfigError(f"--resume: no checkpoint in {ckdir}; start without --resume")
        old = {k: v for k, v in json.loads((ckdir / "state.json").read_text())["config"].items() if k not in RESUME_IGNORED}
        new = {k: v for k, v in json.loads(json.dumps(cfg.to_dict())).items() if k not in RESUME_IGNORED}
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            raise ConfigError(f"--resume with different settings than the checkpoint in {ckdir}: {', '.join(changed)}")
        ms, osd, meta, rng = st.load_state(ckdir)
    train_shards = split_shards(root, "pixel", "train")
    train_pairs = _pair_ids(root, "train")
    if not train_shards or not train_pairs:
        raise DataError(f"no pixel pairs in the train split of {root}: build them with "
                        f"`aig build-data -o {root} --stages ingest,reconstruct`")
    calib = calibration_pairs(train_pairs, cfg.calib_fraction, cfg.seed)
    n_train = len(train_pairs) - len(calib)
    lw = cfg.loader_workers
    if n_train < world * max(1, lw):
        raise DataError(f"{n_train} training pairs cannot feed {world} rank(s) x {max(1, lw)} loader worker(s); "
                        "lower --num-workers/--loader-workers")
    total = total_steps(cfg, n_train, world)
    device = _device(cfg, local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)

    torch.manual_seed(cfg.seed)
    crop = cfg.augment.crop_size
    model = create_backbone(cfg.model, cfg.pretrained, cfg.drop_rate, img_size=crop)
    norm = normalisation(model)
    if cfg.lora_rank:
        model = apply_lora(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets or None)
    model.to(device)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp = cfg.amp if device.type == "cuda" else "off"
    amp_dtype = {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")

    start, positions, skipped = 0, {}, 0
    if meta is not None:
        model.load_state_dict(ms)
        opt.load_state_dict(osd)
        if meta.get("scaler"):
            scaler.load_state_dict(meta["scaler"])
        torch.set_rng_state(rng[f"rng.torch.{rank}"])
        start, positions, skipped = meta["step"], meta["positions"][rank], meta["skipped"]
    if start >= total:
        raise ConfigError(f"--resume: the checkpoint in {ckdir} is already at step {start} of {total}")

    spec = StreamSpec(train_shards, cfg.augment, norm["mean"], norm["std"], seed=cfg.seed, batch_size=cfg.batch_size,
                      crops_per_pair=cfg.crops_per_pair, shuffle_buffer=cfg.shuffle_buffer, rank=rank, world=world,
                      exclude_pairs=calib, start=positions, rotate=(start * cfg.grad_accum) % max(1, lw))
    loader = iter(make_loader(spec, lw))
    export_cfg = {"model": cfg.model, "img_size": crop, "crop_size": crop, **norm, "threshold": 0.5,
                  "max_tiles": cfg.max_tiles, "tile_aggregate": "mean"}
    log = MetricsLog(out / "metrics.jsonl", start if cfg.resume else None, cfg.log_with) if rank == 0 else None
    val_pairs: list = []
    if rank == 0:
        val_pairs = list(read_pairs(split_shards(root, "pixel", "val"), limit=cfg.val_max_pairs))
    bce = torch.nn.BCEWithLogitsLoss()

    def save(step: int) -> None:
        gathered = _gather((positions, skipped_local, torch.get_rng_state()), world)
        if rank != 0:
            return
        model_state = (net.module if world > 1 else net).state_dict()
        meta = {"step": step, "total_steps": total, "config": cfg.to_dict(), "positions": [g[0] for g in gathered],
                "skipped": skipped + sum(g[1] for g in gathered), "scaler": scaler.state_dict() if amp == "fp16" else None}
        st.save_state(ckdir, model_state, opt, meta, {f"torch.{r}": g[2] for r, g in enumerate(gathered)})

    skipped_local = 0
    bar = tqdm(total=total, initial=start, disable=rank != 0 or not cfg.progress, desc="pixel", unit="step")
    t0, seen, loss_acc, n_acc = time.perf_counter(), 0, 0.0, 0
    net.train()
    for step in range(start, total):
        lr = lr_at(step, cfg.lr, cfg.warmup_steps, total, cfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        for micro in range(cfg.grad_accum):
            b = next(loader)
            positions[str(b["worker"])] = b["position"]
            skipped_local += b["skipped"]
            x, y = b["x"].to(device, non_blocking=True), b["y"].to(device)
            sync = net.no_sync() if world > 1 and micro < cfg.grad_accum - 1 else contextlib.nullcontext()
            with sync:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = net(x).float().reshape(-1)
                loss = bce(logits, y) / cfg.grad_accum
                scaler.scale(loss).backward()
            loss_acc += loss.item()
            seen += len(y)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        n_acc += 1
        bar.update(1)
        done = step + 1
        if rank == 0 and (done % cfg.log_every == 0 or done == total):
            dt = time.perf_counter() - t0
            rec = {"step": done, "loss": loss_acc / n_acc, "lr": lr, "images_per_s": seen * world / dt,
                   "epoch": b["epoch"], "skipped": skipped + skipped_local}
            log.write(rec)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{lr:.2e}")
            t0, seen, loss_acc, n_acc = time.perf_counter(), 0, 0.0, 0
        if rank == 0 and cfg.val_every and done % cfg.val_every == 0 and done < total and val_pairs:
            log.write({"step": done, **{f"val_{k}": v for k, v in evaluate_pairs(model, export_cfg, val_pairs, device).items()}})
        if (cfg.save_every and done % cfg.save_every == 0) or done == total:
            save(done)
    bar.close()
    del loader
    if rank != 0:
        return {}
    from .models import merged

    plain = merged(model).to(device)
    calib_pairs = list(read_pairs(train_shards, only=calib)) if calib and cfg.calibrate_on != "val" else []
    sources = [f"{len(calib_pairs)} held-back train pairs"] if calib_pairs else []
    if cfg.calibrate_on in ("val", "both") and val_pairs:
        calib_pairs += val_pairs
        sources.append(f"{len(val_pairs)} val pairs (val balanced accuracy is then not independent)")
    export_cfg["threshold"] = calibrate(plain, export_cfg, calib_pairs, device)
    export_cfg["threshold_source"] = " + ".join(sources) or "default 0.5"
    val = evaluate_pairs(plain, export_cfg, val_pairs, device) if val_pairs else {"pairs": 0}
    log.write({"step": total, "threshold": export_cfg["threshold"], **{f"val_{k}": v for k, v in val.items()}})
    log.close()
    final = {**export_cfg, "augment": cfg.augment.to_dict(), "train_config": cfg.to_dict(), "step": total,
             "dataset": {"root": str(root.resolve()), "run_ids": run_ids(root, "pixel"),
                         "train_shards": [str(Path(s).relative_to(root)) for s in train_shards],
                         "calibration_pairs": sorted(calib), "skipped_members": meta_skipped(ckdir)},
             "val": val, "lora": {"rank": cfg.lora_rank, "alpha": cfg.lora_alpha, "merged": True} if cfg.lora_rank else None,
             "versions": _versions()}
    save_pixel_export(out / "final", plain, final)
    return {"output": str(out / "final"), "steps": total, "threshold": export_cfg["threshold"],
            "threshold_source": export_cfg["threshold_source"], "val": val,
            "skipped": final["dataset"]["skipped_members"]}


def meta_skipped(ckdir: Path) -> int:
    return json.loads((ckdir / "state.json").read_text())["skipped"]


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in ("torch", "timm", "peft"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out
