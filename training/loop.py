"""The one training loop, model-agnostic: steps with gradient accumulation, the LR schedule, mixed precision,
DDP, checkpoints and --resume, metrics (JSONL, TensorBoard), validation cadence and the final export. A branch
plugs in an adapter (training/pixel.py, training/semantic.py) that owns the model, the batches, the loss,
validation and the export. One process, or one rank of a Ray Train DDP run (training/distributed.py)."""

from __future__ import annotations

import contextlib
import json
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import ConfigError, TrainConfig

RESUME_IGNORED = {"resume", "progress", "ray_address", "val_every", "save_every", "log_every", "log_with", "output", "merge"}


@dataclass
class TrainReport:
    """What a run made: its export folder, steps, validation metrics, skipped inputs, and the branch's extras."""

    output: str
    steps: int
    threshold: float | None = None         # pixel: the calibrated decision threshold
    threshold_source: str | None = None
    records: int | None = None             # semantic: training records
    val: dict | None = None
    skipped: int = 0                       # unreadable members/records passed over
    merged: str | None = None              # semantic --merge: the merged model folder

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainReport":
        return cls(**d)


class Adapter(ABC):
    """What a branch brings to the loop (one per rank; the loop sets rank and world); rank 0 alone validates
    and exports."""

    unit: str            # what a batch counts, for the throughput metric '{unit}_per_s'
    full_state: bool     # checkpoints hold the whole model (else only its trainable weights)

    def __init__(self, cfg: TrainConfig):
        self.cfg, self.rank, self.world = cfg, 0, 1

    @abstractmethod
    def prepare(self) -> int:
        """Read the dataset's index (refusing what cannot train); return the number of optimizer steps."""

    @abstractmethod
    def build(self):
        """The model to train (on the CPU)."""

    @abstractmethod
    def start(self, step: int, meta: dict | None, device) -> None:
        """Open the batch stream at `step` (the checkpoint's meta when resuming); rank 0 reads validation data."""

    @abstractmethod
    def batch(self, step: int, micro: int) -> tuple[dict, int]:
        """(model inputs on the device, items counted) of a micro-batch."""

    @abstractmethod
    def loss(self, net, batch: dict):
        """The batch's mean loss (under autocast)."""

    @abstractmethod
    def log_fields(self) -> dict:
        """Extra fields of a training metrics line."""

    def rank_state(self):
        """This rank's part of a checkpoint (gathered from every rank)."""
        return None

    @abstractmethod
    def checkpoint_meta(self, gathered: list) -> dict:
        """Checkpoint fields from every rank's rank_state()."""

    @abstractmethod
    def validate(self) -> dict | None:
        """Validation metrics of the model being trained (None: nothing to validate)."""

    def stop(self) -> None:
        """Close the batch stream."""
        return None

    @abstractmethod
    def finish(self) -> dict:
        """Final calibration and validation: the last metrics line's fields."""

    @abstractmethod
    def export(self, steps: int, skipped: int) -> TrainReport:
        """Write the trained model and its provenance."""


def device_for(cfg: TrainConfig, local_rank: int):
    import torch

    if cfg.device == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {cfg.device}: no CUDA device here; use --device cpu")
    return torch.device(cfg.device)


def gather(obj, world: int) -> list:
    """`obj` of every rank (rank order)."""
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in ("torch", "timm", "peft"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def resume_state(cfg: TrainConfig, ckdir: Path) -> tuple:
    """The checkpoint to continue from, refused when missing or made with other settings."""
    from . import state as st

    if not (ckdir / "state.json").is_file():
        raise ConfigError(f"--resume: no checkpoint in {ckdir}; start without --resume")
    old = {k: v for k, v in json.loads((ckdir / "state.json").read_text())["config"].items() if k not in RESUME_IGNORED}
    new = {k: v for k, v in json.loads(json.dumps(cfg.to_dict())).items() if k not in RESUME_IGNORED}
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        raise ConfigError(f"--resume with different settings than the checkpoint in {ckdir}: {', '.join(changed)}")
    return st.load_state(ckdir)


def train(adapter: Adapter, rank: int = 0, world: int = 1, local_rank: int = 0) -> TrainReport | None:
    """Train; rank 0 writes metrics, checkpoints and the export and returns the report (other ranks: None)."""
    import torch
    from tqdm import tqdm

    from . import state as st
    from .metrics import MetricsLog
    from .schedule import lr_at

    cfg = adapter.cfg
    cfg.validate()
    out = Path(cfg.output)
    ckdir = out / "checkpoints" / "last"
    meta = None
    if cfg.resume:  # checked first: a refused resume costs nothing
        ms, osd, meta, rng = resume_state(cfg, ckdir)
    adapter.rank, adapter.world = rank, world
    total = adapter.prepare()
    device = device_for(cfg, local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = adapter.build()
    model.to(device)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(list(trainable.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp = cfg.amp if device.type == "cuda" else "off"
    amp_dtype = {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")

    start = 0
    if meta is not None:
        if adapter.full_state:
            model.load_state_dict(ms)
        else:
            missing = set(trainable) - set(ms)
            if missing:
                raise ConfigError(f"checkpoint {ckdir} lacks adapter weights {sorted(missing)[:3]}")
            with torch.no_grad():
                for n, p in trainable.items():
                    p.copy_(ms[n])
        opt.load_state_dict(osd)
        if meta.get("scaler"):
            scaler.load_state_dict(meta["scaler"])
        torch.set_rng_state(rng[f"rng.torch.{rank}"])
        start = meta["step"]
    if start >= total:
        raise ConfigError(f"--resume: the checkpoint in {ckdir} is already at step {start} of {total}")
    adapter.start(start, meta, device)
    log = MetricsLog(out / "metrics.jsonl", start if cfg.resume else None, cfg.log_with) if rank == 0 else None

    def save(step: int) -> None:
        gathered = gather((adapter.rank_state(), torch.get_rng_state()), world)
        if rank != 0:
            return
        weights = model.state_dict() if adapter.full_state else {n: p.detach() for n, p in trainable.items()}
        m = {"step": step, "total_steps": total, "config": cfg.to_dict(), **adapter.checkpoint_meta([g[0] for g in gathered]),
             "scaler": scaler.state_dict() if amp == "fp16" else None}
        st.save_state(ckdir, weights, opt, m, {f"torch.{r}": g[1] for r, g in enumerate(gathered)})

    bar = tqdm(total=total, initial=start, disable=rank != 0 or not cfg.progress, desc=cfg.branch, unit="step")
    t0, seen, loss_acc, n_acc = time.perf_counter(), 0, 0.0, 0
    net.train()
    for step in range(start, total):
        lr = lr_at(step, cfg.lr, cfg.warmup_steps, total, cfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        for micro in range(cfg.grad_accum):
            batch, n = adapter.batch(step, micro)
            sync = net.no_sync() if world > 1 and micro < cfg.grad_accum - 1 else contextlib.nullcontext()
            with sync:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = adapter.loss(net, batch) / cfg.grad_accum
                scaler.scale(loss).backward()
            loss_acc += loss.item()
            seen += n
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        n_acc += 1
        bar.update(1)
        done = step + 1
        if rank == 0 and (done % cfg.log_every == 0 or done == total):
            dt = time.perf_counter() - t0
            log.write({"step": done, "loss": loss_acc / n_acc, "lr": lr, f"{adapter.unit}_per_s": seen * world / dt,
                       **adapter.log_fields()})
            bar.set_postfix(loss=f"{loss_acc / n_acc:.4f}", lr=f"{lr:.2e}")
            t0, seen, loss_acc, n_acc = time.perf_counter(), 0, 0.0, 0
        if rank == 0 and cfg.val_every and done % cfg.val_every == 0 and done < total:
            val = adapter.validate()
            if val is not None:
                log.write({"step": done, **{f"val_{k}": v for k, v in val.items()}})
        if (cfg.save_every and done % cfg.save_every == 0) or done == total:
            save(done)
    bar.close()
    adapter.stop()
    if rank != 0:
        return None
    log.write({"step": total, **adapter.finish()})
    log.close()
    return adapter.export(total, json.loads((ckdir / "state.json").read_text())["skipped"])
