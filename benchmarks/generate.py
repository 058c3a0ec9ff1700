#!/usr/bin/env python
"""Text-to-image generation: aig's generate stage (TextToImageWorker) against a bare batched diffusers loop.

Same pipeline object, dtype, batch size, steps, guidance and seeds, in the same run: the bare loop only calls
the pipeline (prompts in, PIL images out); aig's worker also encodes the PNGs (in a CPU pool, overlapped with
the next batch), builds provenance and writes the chunk (tars, index and samples Parquet, done marker).
Target: aig >= 0.9x the bare loop's images/s.

    python benchmarks/generate.py --write-results          # CUDA: SD-1.5-sized pipeline, random weights, 512 px fp16
    python benchmarks/generate.py --smoke                  # CPU: tiny random pipeline, checks the script works

Without a CUDA device (and without --smoke) it measures nothing; with --write-results it marks its RESULTS.md
section "not measured" and keeps the last measured figures with their date.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from results import machine_facts, markers, mark_not_measured, write_section  # noqa: E402

NAME, TARGET = "generate-gpu", 0.9
HEADING = "Text-to-image generation against a bare diffusers loop"
INTRO = ("aig's generate stage (`TextToImageWorker.generate_rows` + `write_chunk`, what each Ray actor runs) against "
         "a bare batched diffusers loop on the same pipeline object, dtype, batch, steps and seeds, in the same run. "
         f"Target: >= {TARGET}x. Re-run with `python benchmarks/generate.py --write-results` on a CUDA machine "
         "(part of `benchmarks/gpu_all.sh`).")


def build_sd15_sized(out: Path, dtype) -> Path:
    """A StableDiffusionPipeline of SD 1.5's sizes (UNet 860 M, CLIP-L-sized text encoder, SD VAE), random weights.

    The tokenizer is the tiny stand-in of aig.generators.tiny_models (no hub): prompts cost the same 77 tokens."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from aig.generators.tiny_models import _tokenizer
    from reconstruct import SD_VAE_CONFIG

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=768, attention_head_dim=8)
    tokenizer = _tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=AutoencoderKL(**SD_VAE_CONFIG), text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.to(dtype).save_pretrained(out, safe_serialization=True)
    return out


def rows(n: int) -> list[dict]:
    words = ("cat", "harbour", "bicycle", "forest", "kitchen", "mountain", "street", "dog")
    return [{"key": f"real{i:05d}", "source_id": f"src{i:05d}", "group_id": f"src{i:05d}", "split": "train",
             "caption": f"a photo of a {words[i % len(words)]}, number {i}", "input_path": f"generated://{i}",
             "origin": "folder"} for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny random pipeline on CPU (checks the script works)")
    ap.add_argument("--n", type=int, help="images per timing (default 32 on CUDA, 4 in --smoke)")
    ap.add_argument("--batch", type=int, help="batch size (default 8 on CUDA, 2 in --smoke)")
    ap.add_argument("--steps", type=int, help="inference steps (default 20 on CUDA, 2 in --smoke)")
    ap.add_argument("--size", type=int, help="image side (default 512 on CUDA, 32 in --smoke)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        print("no CUDA device: nothing measured (use --smoke for a CPU check of the script)")
        if args.write_results:
            begin, end = markers(NAME, "generate.py")
            if begin in (HERE / "RESULTS.md").read_text():
                mark_not_measured(begin, end, "no CUDA device; run benchmarks/gpu_all.sh on a GPU")
            else:
                write_section(NAME, "generate.py", HEADING, INTRO, "**Not measured** yet: no run so far had a CUDA "
                              "device (`benchmarks/gpu_all.sh` runs it on a GPU machine).")
        return 0
    if args.smoke:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    n, batch = args.n or (32 if cuda else 4), args.batch or (8 if cuda else 2)
    steps, side = args.steps or (20 if cuda else 2), args.size or (512 if cuda else 32)
    dtype_name = "float16" if cuda else "float32"
    load0 = os.getloadavg()[0]
    from aig.generators.text2image import PipelineSpec, TextToImageWorker
    from aig.pipeline.chunks import write_chunk
    from aig.pipeline.config import GenerateConfig, ShardConfig

    work = Path(tempfile.mkdtemp(prefix="aig-bench-generate-"))
    try:
        t = time.perf_counter()
        if cuda:
            model = build_sd15_sized(work / "sd15-random", getattr(torch, dtype_name))
        else:
            from aig.generators.tiny_models import build_tiny_sd

            model = build_tiny_sd(work / "tiny-sd")
        built = time.perf_counter() - t
        cfg = GenerateConfig(batch_size=batch, steps=steps, guidance=5.0, width=side, height=side, dtype=dtype_name)
        t = time.perf_counter()
        worker = TextToImageWorker(PipelineSpec(name="bench", model=str(model)), cfg, threads=1)
        loaded = time.perf_counter() - t
        pipe = worker.pipe
        real = rows(n)
        jobs = worker.jobs(real)

        def sync():
            if cuda:
                torch.cuda.synchronize()

        def bare() -> None:
            for i in range(0, len(jobs), batch):
                part = jobs[i:i + batch]
                pipe([j["prompt"] for j in part], num_inference_steps=steps, guidance_scale=cfg.guidance, height=side,
                     width=side, generator=[torch.Generator("cpu").manual_seed(j["seed"]) for j in part],
                     output_type="pil")

        def aig(rep: int) -> None:
            outcomes = worker.generate_rows(real, "bench")
            write_chunk(work / "data", f"semantic-bench-{rep}", 0, outcomes, ShardConfig(), "generate", "bench")

        worker.generate_rows(real[:batch], "warmup")  # untimed: kernels, allocator
        times: dict[str, list[float]] = {"bare": [], "aig": []}
        for rep in range(args.repeats):
            for key in ("bare", "aig"):
                sync()
                t = time.perf_counter()
                bare() if key == "bare" else aig(rep)
                sync()
                times[key].append(time.perf_counter() - t)
                print(f"{key:5s} {n} images {times[key][-1]:7.2f}s {n / times[key][-1]:6.2f} img/s", flush=True)
        b, a = min(times["bare"]), min(times["aig"])
        ratio = b / a
        device = torch.cuda.get_device_name(0) if cuda else "CPU (smoke test: tiny random pipeline)"
        lines = [f"Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC: `python benchmarks/generate.py "
                 f"{' '.join(argv if argv is not None else sys.argv[1:])}`; load average (1 min) before / after "
                 f"{load0:.2f} / {os.getloadavg()[0]:.2f}.", "",
                 f"- device: {device}; torch {torch.__version__}; dtype {dtype_name}",
                 *[f"- {f}" for f in machine_facts(("aig", "torch", "diffusers", "transformers", "pillow"))], "",
                 f"{'SD-1.5-sized StableDiffusionPipeline (random weights)' if cuda else 'tiny random pipeline'}, "
                 f"{side} px, {steps} DDIM steps, guidance 5, batch {batch}, {n} prompts; pipeline built in "
                 f"{built:.1f}s, loaded by aig's worker in {loaded:.1f}s (not timed); untimed warm-up of one batch; "
                 f"best of {args.repeats}.", "",
                 "| configuration | images | seconds (all runs) | images/s |", "|---|---:|---:|---:|",
                 f"| bare diffusers loop (pipeline call only) | {n} | {b:.2f} ({', '.join(f'{x:.2f}' for x in times['bare'])})"
                 f" | {n / b:.2f} |",
                 f"| aig TextToImageWorker + write_chunk | {n} | {a:.2f} ({', '.join(f'{x:.2f}' for x in times['aig'])})"
                 f" | {n / a:.2f} |", "",
                 f"aig runs at **{ratio:.2f}x the bare diffusers loop** (target >= {TARGET}x: "
                 f"{'met' if ratio >= TARGET else '**missed**'})."]
        text = "\n".join(lines) + "\n"
        print("\n" + text)
        if args.write_results and cuda:
            write_section(NAME, "generate.py", HEADING, INTRO, text)
        elif args.write_results:
            print("--smoke: results not written (CPU figures of a tiny pipeline say nothing about a GPU)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
