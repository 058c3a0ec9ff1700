#!/usr/bin/env python
"""One DINOv2-L/14 + LoRA (rank 8) pixel-branch training step at 336 px on a GPU: the paper-like setting.

Self-contained (timm + peft + torch; random weights, pretrained=False, so it runs offline). Builds
`vit_large_patch14_dinov2.lvd142m` with a 1-logit head at img_size 336, wraps it with LoRA on the attention
qkv/proj and MLP fc1/fc2 (head fully trained, as `aig train --lora-rank 8` does), then times forward + backward +
AdamW step on a batch of --batch (default 32) random 336 px crops under bf16 autocast. Prints one JSON object.

    python benchmarks/train_gpu.py [--batch 32] [--steps 20] [--no-amp] [--grad-checkpointing]
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--size", type=int, default=336)
    ap.add_argument("--no-amp", action="store_true")
    ap.add_argument("--grad-checkpointing", action="store_true")
    a = ap.parse_args()

    import timm
    import torch
    from peft import LoraConfig, get_peft_model

    assert torch.cuda.is_available(), "needs a CUDA GPU"
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model = timm.create_model("vit_large_patch14_dinov2.lvd142m", pretrained=False, num_classes=1, img_size=a.size)
    if a.grad_checkpointing:
        model.set_grad_checkpointing(True)
    targets = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "head"]
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, modules_to_save=["head"]))
    model.to(dev).train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randn(a.batch, 3, a.size, a.size, device=dev)
    y = torch.randint(0, 2, (a.batch,), device=dev).float()
    bce = torch.nn.BCEWithLogitsLoss()

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=not a.no_amp):
            logits = model(x).float().reshape(-1)
        loss = bce(logits, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({
        "model": "vit_large_patch14_dinov2.lvd142m", "lora_rank": 8, "img_size": a.size, "batch": a.batch,
        "amp": "off" if a.no_amp else "bf16", "grad_checkpointing": a.grad_checkpointing,
        "trainable_params": trainable, "total_params": total,
        "step_s_median": med, "step_s_min": times[0], "images_per_s": a.batch / med,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
        "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "timm": timm.__version__,
    }, indent=1))


if __name__ == "__main__":
    main()
