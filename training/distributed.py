"""Ray Train: the same loop as a TorchTrainer with DDP (gloo on CPU, nccl on GPU), one shard share per rank."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _rank_worker(config: dict) -> None:
    """One Ray Train rank: the training loop with this rank's place in the world; rank 0 writes summary.json."""
    import ray.train
    import torch

    from .branches import adapter_for
    from .config import CONFIGS
    from .loop import train

    config = dict(config)
    cfg = CONFIGS[config.pop("_branch")].from_dict(config)
    cfg.threads = cfg.threads or 1
    if torch.cuda.is_available():
        cfg.device = "cuda"
    ctx = ray.train.get_context()
    report = train(adapter_for(cfg), ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank())
    if ctx.get_world_rank() == 0:
        (Path(cfg.output) / "summary.json").write_text(json.dumps(report.to_dict(), indent=1))


def run_on_ray(cfg, branch: str = "pixel") -> dict:
    """Run the branch's loop on cfg.num_workers Ray Train workers; returns rank 0's summary.json."""
    from aig.pipeline.runner import start_ray

    # workers' logs reach the driver here (training progress)
    ray, owned, _ = start_ray(cfg.ray_address, max(cfg.num_workers, os.cpu_count() or 1), log_to_driver=True)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    try:
        use_gpu = ray.cluster_resources().get("GPU", 0) >= cfg.num_workers and cfg.device != "cpu"
        out = Path(cfg.output).resolve()
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").unlink(missing_ok=True)
        d = cfg.to_dict()
        d.update(output=str(out), dataset=str(Path(cfg.dataset).resolve()), progress=False, _branch=branch)
        trainer = TorchTrainer(_rank_worker, train_loop_config=d,
                               scaling_config=ScalingConfig(num_workers=cfg.num_workers, use_gpu=use_gpu,
                                                            resources_per_worker={"CPU": 1}),
                               torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
                               run_config=RunConfig(storage_path=str(out / "ray"), name="train"))
        trainer.fit()
        return json.loads((out / "summary.json").read_text())
    finally:
        if owned:
            ray.shutdown()
