"""The semantic-branch trainer: a transformers VLM + peft LoRA, SFT on the semantic-sft records (answer-token
loss, images pixel-scrambled with each record's recipe). Saves OUTPUT/adapter (adapter_model.safetensors,
adapter_config.json, the processor) and, with --merge, OUTPUT/merged (a plain transformers model)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError
from .shards import DataError

RESUME_IGNORED = {"resume", "progress", "ray_address", "val_every", "save_every", "log_every", "output", "merge", "log_with"}


@dataclass
class SemanticConfig:
    dataset: str = "aig-data/default"
    output: str = "aig-runs/semantic"
    model: str = ""                   # hub id or local path (AutoModelForImageTextToText + AutoProcessor)
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=list)  # module-name suffixes; empty = the LLM's Linear layers
    batch_size: int = 1
    grad_accum: int = 1
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 10
    min_lr_ratio: float = 0.0
    max_steps: int = 0
    epochs: float = 1.0
    seed: int = 0
    max_length: int = 2048
    gradient_checkpointing: bool = False
    merge: bool = False
    val_every: int = 0
    val_max_records: int = 64
    save_every: int = 0
    log_every: int = 10
    device: str = "auto"
    amp: str = "auto"
    threads: int = 0
    num_workers: int = 0
    ray_address: str | None = None
    resume: bool = False
    progress: bool = True
    log_with: list[str] = field(default_factory=list)  # trackers beside metrics.jsonl: tensorboard

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SemanticConfig":
        return cls(**d)

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("--branch semantic needs --model (a VLM hub id or local folder, e.g. the demo's "
                              "aig-data/models/tiny-vlm)")
        if self.lora_rank < 1:
            raise ConfigError("--branch semantic trains a LoRA adapter: --lora-rank must be >= 1")
        for ok, msg in [(self.batch_size >= 1 and self.grad_accum >= 1, "--batch-size and --grad-accum must be >= 1"),
                        (self.lr > 0 and self.epochs > 0 and self.max_steps >= 0, "--lr, --epochs must be > 0"),
                        (self.amp in ("auto", "bf16", "fp16", "off"), "--amp must be auto, bf16, fp16 or off"),
                        (self.max_length >= 16, "--max-length must be >= 16")]:
            if not ok:
                raise ConfigError(msg)
        from .metrics import check_log_with

        check_log_with(self.log_with)


def semantic_config(options: dict) -> SemanticConfig:
    cfg = SemanticConfig()
    for k, v in options.items():
        if v is None:
            continue
        if not hasattr(cfg, k):
            raise ConfigError(f"option --{k.replace('_', '-')} does not apply to --branch semantic")
        setattr(cfg, k, v)
    cfg.validate()
    return cfg


def load_vlm(name: str, dtype):
    """(model, processor) by hub id or local path; a clear error when it cannot be loaded."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(name)
        model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype)
    except Exception as e:
        raise ConfigError(f"could not load VLM {name!r} ({type(e).__name__}: {str(e)[:300]}); pass a local folder "
                          "or download it once with `huggingface-cli download ID --local-dir DIR`") from None
    from aig.labeling.vlm import VLMFormatError, prompt_text

    try:
        prompt_text(processor, "")
    except VLMFormatError as e:
        raise ConfigError(f"cannot train on {name!r}: {e}") from None
    return model, processor


def load_semantic_model(path, base_model: str | None = None, merge: bool = False):
    """(model in eval mode, processor, training info) from OUTPUT/adapter (base named in its training.json,
    or `base_model`) or from OUTPUT/merged (a plain transformers folder)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(path)
    info = json.loads((path / "training.json").read_text()) if (path / "training.json").is_file() else {}
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        base_id = base_model or info.get("base_model")
        if not base_id:
            raise ConfigError(f"{path}: no training.json naming the base model; pass base_model")
        base, _ = load_vlm(base_id, "auto")
        model = PeftModel.from_pretrained(base, str(path))
        if merge:
            model = model.merge_and_unload()
    elif (path / "config.json").is_file():
        model = AutoModelForImageTextToText.from_pretrained(str(path))
    else:
        raise ConfigError(f"'{path}' is neither an adapter folder (adapter_config.json) nor a model folder (config.json)")
    return model.eval(), AutoProcessor.from_pretrained(str(path)), info


def run_semantic(cfg: SemanticConfig, rank: int = 0, world: int = 1, local_rank: int = 0) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm

    from . import state as st
    from .metrics import MetricsLog, auroc, balanced_accuracy
    from .pixel import _device, _gather, _versions
    from .pixel_stream import Skips
    from .schedule import lr_at
    from .semantic_data import rank_indices, read_records, sft_batch, verdict_scores
    from .shards import run_ids, split_shards

    cfg.validate()
    root, out = Path(cfg.dataset), Path(cfg.output)
    ckdir = out / "checkpoints" / "last"
    meta = None
    if cfg.resume:
        if not (ckdir / "state.json").is_file():
            raise ConfigError(f"--resume: no checkpoint in {ckdir}; start without --resume")
        old = {k: v for k, v in json.loads((ckdir / "state.json").read_text())["config"].items() if k not in RESUME_IGNORED}
        new = {k: v for k, v in json.loads(json.dumps(cfg.to_dict())).items() if k not in RESUME_IGNORED}
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            raise ConfigError(f"--resume with different settings than the checkpoint in {ckdir}: {', '.join(changed)}")
        ms, osd, meta, rng = st.load_state(ckdir)
    skips = Skips()
    shards = split_shards(root, "semantic-sft", "train")
    records = read_records(shards, skips)
    if len(records) < world:
        raise DataError(f"{len(records)} semantic-sft training record(s) in {root}: label the dataset first with "
                        f"`aig label-semantic -d {root} --model ...`")
    per_step = cfg.batch_size * cfg.grad_accum
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * (len(records) // world) / per_step))
    device = _device(cfg, local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    amp = cfg.amp if device.type == "cuda" else "off"
    amp_dtype = {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)

    torch.manual_seed(cfg.seed)
    base, processor = load_vlm(cfg.model, torch.float32)
    if cfg.gradient_checkpointing:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.config.use_cache = False
    from aig.labeling.vlm import VLMFormatError, default_lora_targets

    try:
        targets = cfg.lora_targets or default_lora_targets(base)
    except VLMFormatError as e:
        raise ConfigError(f"{cfg.model!r}: {e}") from None
    try:
        model = get_peft_model(base, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                                target_modules=targets, bias="none"))
    except ValueError as e:
        raise ConfigError(f"LoRA targets {targets!r} match no module of {cfg.model!r} ({e}); pass --lora-targets") from None
    model.to(device)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    opt = torch.optim.AdamW(list(trainable.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
    start, skipped = 0, 0
    if meta is not None:
        missing = set(trainable) - set(ms)
        if missing:
            raise ConfigError(f"checkpoint {ckdir} lacks adapter weights {sorted(missing)[:3]}")
        with torch.no_grad():
            for n, p in trainable.items():
                p.copy_(ms[n])
        opt.load_state_dict(osd)
        torch.set_rng_state(rng[f"rng.torch.{rank}"])
        start, skipped = meta["step"], meta["skipped"]
    if start >= total:
        raise ConfigError(f"--resume: the checkpoint in {ckdir} is already at step {start} of {total}")
    log = MetricsLog(out / "metrics.jsonl", start if cfg.resume else None, cfg.log_with) if rank == 0 else None
    val = read_records(split_shards(root, "semantic-sft", "val"), skips)[:cfg.val_max_records] if rank == 0 else []

    def validate() -> dict:
        if not val:
            return {"records": 0}
        s = verdict_scores(model, processor, val, device)
        y = [r.label == "fake" for r in val]
        return {"records": len(val), "auroc": auroc(s, y), "balanced_accuracy": balanced_accuracy(s, y, 0.0)}

    def save(step: int) -> None:
        gathered = _gather(torch.get_rng_state(), world)
        if rank == 0:
            m = {"step": step, "total_steps": total, "config": cfg.to_dict(), "skipped": skipped + skips.total}
            st.save_state(ckdir, {n: p.detach() for n, p in trainable.items()}, opt, m,
                          {f"torch.{r}": g for r, g in enumerate(gathered)})

    bar = tqdm(total=total, initial=start, disable=rank != 0 or not cfg.progress, desc="semantic", unit="step")
    t0, seen, loss_acc, n_acc = time.perf_counter(), 0, 0.0, 0
    net.train()
    for step in range(start, total):
        lr = lr_at(step, cfg.lr, cfg.warmup_steps, total, cfg.min_lr_ratio)
        for g in opt.param_groups:
            g["lr"] = lr
        for micro in range(cfg.grad_accum):
            idx = rank_indices(len(records), cfg.seed, rank, world, (step * cfg.grad_accum + micro) * cfg.batch_size,
                               cfg.batch_size)
            batch = {k: v.to(device) for k, v in sft_batch(processor, [records[i] for i in idx], cfg.max_length).items()}
            sync = net.no_sync() if world > 1 and micro < cfg.grad_accum - 1 else contextlib.nullcontext()
            with sync:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = net(**batch).loss / cfg.grad_accum
                scaler.scale(loss).backward()
            loss_acc += loss.item()
            seen += len(idx)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        n_acc += 1
        bar.update(1)
        done = step + 1
        if rank == 0 and (done % cfg.log_every == 0 or done == total):
            log.write({"step": done, "loss": loss_acc / n_acc, "lr": lr,
                       "records_per_s": seen * world / (time.perf_counter() - t0), "skipped": skipped + skips.total})
            bar.set_postfix(loss=f"{loss_acc / n_acc:.4f}")
            t0, seen, loss_acc, n_acc = time.perf_counter(), 0, 0.0, 0
        if rank == 0 and cfg.val_every and done % cfg.val_every == 0 and done < total:
            log.write({"step": done, **{f"val_{k}": v for k, v in validate().items()}})
        if (cfg.save_every and done % cfg.save_every == 0) or done == total:
            save(done)
    bar.close()
    if rank != 0:
        return {}
    metrics = validate()
    log.write({"step": total, **{f"val_{k}": v for k, v in metrics.items()}})
    log.close()
    adapter = out / "adapter"
    model.save_pretrained(str(adapter))  # adapter_model.safetensors + adapter_config.json
    processor.save_pretrained(str(adapter))
    info = {"base_model": cfg.model, "config": cfg.to_dict(), "step": total, "records": len(records),
            "dataset": {"root": str(root.resolve()), "run_ids": run_ids(root, "semantic-sft"),
                        "train_shards": [str(Path(s).relative_to(root)) for s in shards]},
            "skipped_records": skipped + skips.total, "val": metrics, "versions": _versions(),
            "scramble": "each record's own recipe (aig.labeling.scramble.scramble)", "loss": "answer tokens only"}
    from .metrics import finite

    info = finite(info)
    (adapter / "training.json").write_text(json.dumps(info, indent=1))
    summary = {"output": str(adapter), "steps": total, "records": len(records), "val": metrics,
               "skipped": info["skipped_records"]}
    if cfg.merge:
        merged = model.merge_and_unload()
        merged.save_pretrained(str(out / "merged"))
        processor.save_pretrained(str(out / "merged"))
        (out / "merged" / "training.json").write_text(json.dumps(info, indent=1))
        summary["merged"] = str(out / "merged")
    return summary
