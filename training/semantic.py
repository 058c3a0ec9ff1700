"""The semantic branch's adapter to the training loop: a transformers VLM + peft LoRA, SFT on the semantic-sft records (answer-token
loss, images pixel-scrambled with each record's recipe). Saves OUTPUT/adapter (adapter_model.safetensors,
adapter_config.json, the processor) and, with --merge, OUTPUT/merged (a plain transformers model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .config import ConfigError
from .loop import Adapter, TrainReport, versions
from .shards import DataError


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


class SemanticAdapter(Adapter):
    """training.loop's adapter for the semantic branch (one per rank); checkpoints hold the LoRA weights only."""

    unit = "records"
    full_state = False

    def prepare(self) -> int:
        from .pixel_stream import Skips
        from .semantic_data import read_records
        from .shards import split_shards

        cfg, root, world = self.cfg, Path(self.cfg.dataset), self.world
        self.skips = Skips()
        self.shards = split_shards(root, "semantic-sft", "train")
        self.records = read_records(self.shards, self.skips)
        if len(self.records) < world:
            raise DataError(f"{len(self.records)} semantic-sft training record(s) in {root}: label the dataset first "
                            f"with `aig label-semantic -d {root} --model ...`")
        per_step = cfg.batch_size * cfg.grad_accum
        return cfg.max_steps or max(1, math.ceil(cfg.epochs * (len(self.records) // world) / per_step))

    def build(self):
        import torch
        from peft import LoraConfig, get_peft_model

        from aig.labeling.vlm import VLMFormatError, default_lora_targets

        cfg = self.cfg
        base, self.processor = load_vlm(cfg.model, torch.float32)
        if cfg.gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            base.config.use_cache = False
        try:
            targets = cfg.lora_targets or default_lora_targets(base)
        except VLMFormatError as e:
            raise ConfigError(f"{cfg.model!r}: {e}") from None
        try:
            self.model = get_peft_model(base, LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                                         target_modules=targets, bias="none"))
        except ValueError as e:
            raise ConfigError(f"LoRA targets {targets!r} match no module of {cfg.model!r} ({e}); pass --lora-targets") from None
        return self.model

    def start(self, step: int, meta: dict | None, device) -> None:
        from .semantic_data import read_records
        from .shards import split_shards

        self.device = device
        self.skipped = meta["skipped"] if meta else 0
        self.val = []
        if self.rank == 0:
            val_shards = split_shards(Path(self.cfg.dataset), "semantic-sft", "val")
            self.val = read_records(val_shards, self.skips)[:self.cfg.val_max_records]

    def batch(self, step: int, micro: int) -> tuple[dict, int]:
        from .semantic_data import rank_indices, sft_batch

        cfg = self.cfg
        idx = rank_indices(len(self.records), cfg.seed, self.rank, self.world,
                           (step * cfg.grad_accum + micro) * cfg.batch_size, cfg.batch_size)
        batch = sft_batch(self.processor, [self.records[i] for i in idx], cfg.max_length)
        return {k: v.to(self.device) for k, v in batch.items()}, len(idx)

    def loss(self, net, batch: dict):
        return net(**batch).loss

    def log_fields(self) -> dict:
        return {"skipped": self.skipped + self.skips.total}

    def checkpoint_meta(self, gathered: list) -> dict:
        return {"skipped": self.skipped + self.skips.total}  # every rank reads every record: rank 0's count

    def validate(self) -> dict:
        from .metrics import auroc, balanced_accuracy
        from .semantic_data import verdict_scores

        if not self.val:
            return {"records": 0}
        s = verdict_scores(self.model, self.processor, self.val, self.device)
        y = [r.label == "fake" for r in self.val]
        return {"records": len(self.val), "auroc": auroc(s, y), "balanced_accuracy": balanced_accuracy(s, y, 0.0)}

    def finish(self) -> dict:
        self.metrics = self.validate()
        return {f"val_{k}": v for k, v in self.metrics.items()}

    def export(self, steps: int, skipped: int) -> TrainReport:
        """OUTPUT/adapter (adapter_model.safetensors + adapter_config.json, the processor, training.json) and with
        --merge OUTPUT/merged."""
        from .metrics import finite
        from .shards import provenance

        cfg, out = self.cfg, Path(self.cfg.output)
        adapter = out / "adapter"
        self.model.save_pretrained(str(adapter))
        self.processor.save_pretrained(str(adapter))
        info = {"base_model": cfg.model, "config": cfg.to_dict(), "step": steps, "records": len(self.records),
                "dataset": provenance(Path(cfg.dataset), "semantic-sft", self.shards),
                "skipped_records": skipped, "val": self.metrics, "versions": versions(),
                "scramble": "each record's own recipe (aig.labeling.scramble.scramble)", "loss": "answer tokens only"}
        info = finite(info)
        (adapter / "training.json").write_text(json.dumps(info, indent=1))
        report = TrainReport(output=str(adapter), steps=steps, records=len(self.records), val=self.metrics,
                             skipped=skipped)
        if cfg.merge:
            merged = self.model.merge_and_unload()
            merged.save_pretrained(str(out / "merged"))
            self.processor.save_pretrained(str(out / "merged"))
            (out / "merged" / "training.json").write_text(json.dumps(info, indent=1))
            report.merged = str(out / "merged")
        return report
