"""The pixel branch's adapter to the training loop: a timm backbone on real/reconstruction crop pairs (BCE),
the threshold calibrated on held-back train pairs, exported to OUTPUT/final (aig.training.checkpoint)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from .config import PixelConfig
from .loop import Adapter, TrainReport, versions
from .shards import DataError


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
    from .shards import column

    return column(root, "select distinct pair_id from samples where task = 'pixel' and split = ? "
                        "and pair_id is not null order by 1", [split])


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


class PixelAdapter(Adapter):
    """training.loop's adapter for the pixel branch (one per rank)."""

    unit = "images"
    full_state = True

    def prepare(self) -> int:
        from .shards import split_shards

        cfg, root, world = self.cfg, Path(self.cfg.dataset), self.world
        self.train_shards = split_shards(root, "pixel", "train")
        train_pairs = _pair_ids(root, "train")
        if not self.train_shards or not train_pairs:
            raise DataError(f"no pixel pairs in the train split of {root}: build them with "
                            f"`aig build-data -o {root} --stages ingest,reconstruct`")
        self.calib = calibration_pairs(train_pairs, cfg.calib_fraction, cfg.seed)
        n_train = len(train_pairs) - len(self.calib)
        lw = cfg.loader_workers
        if n_train < world * max(1, lw):
            raise DataError(f"{n_train} training pairs cannot feed {world} rank(s) x {max(1, lw)} loader worker(s); "
                            "lower --num-workers/--loader-workers")
        return total_steps(cfg, n_train, world)

    def build(self):
        from .models import apply_lora, create_backbone, normalisation

        cfg = self.cfg
        crop = cfg.augment.crop_size
        model = create_backbone(cfg.model, cfg.pretrained, cfg.drop_rate, img_size=crop)
        self.norm = normalisation(model)
        if cfg.lora_rank:
            model = apply_lora(model, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets or None)
        self.model = model
        self.export_cfg = {"model": cfg.model, "img_size": crop, "crop_size": crop, **self.norm, "threshold": 0.5,
                           "max_tiles": cfg.max_tiles, "tile_aggregate": "mean"}
        return model

    def start(self, step: int, meta: dict | None, device) -> None:
        from .pixel_stream import StreamSpec, make_loader, read_pairs
        from .shards import split_shards

        cfg, lw = self.cfg, self.cfg.loader_workers
        self.device = device
        self.positions = meta["positions"][self.rank] if meta else {}
        self.skipped, self.skipped_local = (meta["skipped"] if meta else 0), 0
        spec = StreamSpec(self.train_shards, cfg.augment, self.norm["mean"], self.norm["std"], seed=cfg.seed,
                          batch_size=cfg.batch_size, crops_per_pair=cfg.crops_per_pair, shuffle_buffer=cfg.shuffle_buffer,
                          rank=self.rank, world=self.world, exclude_pairs=self.calib, start=self.positions,
                          rotate=(step * cfg.grad_accum) % max(1, lw))
        self.loader = iter(make_loader(spec, lw))
        self.val_pairs = []
        if self.rank == 0:
            self.val_pairs = list(read_pairs(split_shards(Path(cfg.dataset), "pixel", "val"), limit=cfg.val_max_pairs))
        self.epoch = 0

    def batch(self, step: int, micro: int) -> tuple[dict, int]:
        b = next(self.loader)
        self.positions[str(b["worker"])] = b["position"]
        self.skipped_local += b["skipped"]
        self.epoch = b["epoch"]
        return {"x": b["x"].to(self.device, non_blocking=True), "y": b["y"].to(self.device)}, len(b["y"])

    def loss(self, net, batch: dict):
        import torch

        logits = net(batch["x"]).float().reshape(-1)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["y"])

    def log_fields(self) -> dict:
        return {"epoch": self.epoch, "skipped": self.skipped + self.skipped_local}

    def rank_state(self):
        return self.positions, self.skipped_local

    def checkpoint_meta(self, gathered: list) -> dict:
        return {"positions": [g[0] for g in gathered], "skipped": self.skipped + sum(g[1] for g in gathered)}

    def validate(self) -> dict | None:
        return evaluate_pairs(self.model, self.export_cfg, self.val_pairs, self.device) if self.val_pairs else None

    def stop(self) -> None:
        del self.loader

    def finish(self) -> dict:
        from .models import merged
        from .pixel_stream import read_pairs

        cfg, export_cfg, val_pairs = self.cfg, self.export_cfg, self.val_pairs
        self.plain = plain = merged(self.model).to(self.device)
        calib = self.calib
        calib_pairs = list(read_pairs(self.train_shards, only=calib)) if calib and cfg.calibrate_on != "val" else []
        sources = [f"{len(calib_pairs)} held-back train pairs"] if calib_pairs else []
        if cfg.calibrate_on in ("val", "both") and val_pairs:
            calib_pairs += val_pairs
            sources.append(f"{len(val_pairs)} val pairs (val balanced accuracy is then not independent)")
        export_cfg["threshold"] = calibrate(plain, export_cfg, calib_pairs, self.device)
        export_cfg["threshold_source"] = " + ".join(sources) or "default 0.5"
        self.val = evaluate_pairs(plain, export_cfg, val_pairs, self.device) if val_pairs else {"pairs": 0}
        return {"threshold": export_cfg["threshold"], **{f"val_{k}": v for k, v in self.val.items()}}

    def export(self, steps: int, skipped: int) -> TrainReport:
        from .checkpoint import save_pixel_export
        from .shards import provenance

        cfg, out = self.cfg, Path(self.cfg.output)
        final = {**self.export_cfg, "augment": cfg.augment.to_dict(), "train_config": cfg.to_dict(), "step": steps,
                 "dataset": {**provenance(Path(cfg.dataset), "pixel", self.train_shards),
                             "calibration_pairs": sorted(self.calib), "skipped_members": skipped},
                 "val": self.val, "lora": {"rank": cfg.lora_rank, "alpha": cfg.lora_alpha, "merged": True} if cfg.lora_rank else None,
                 "versions": versions()}
        save_pixel_export(out / "final", self.plain, final)
        return TrainReport(output=str(out / "final"), steps=steps, threshold=self.export_cfg["threshold"],
                           threshold_source=self.export_cfg["threshold_source"], val=self.val, skipped=skipped)
