#!/usr/bin/env python
"""Labeling benchmark (issue 4).

1. Local backend (transformers), through `LabelWorker.run_chunk` (what each Ray actor runs: read the images from
   the tars, constrained generation, purity rules, label tables, semantic-sft shards): the same N images at
   batch size 1 (one image at a time, the baseline) and at --batch (default 8), in this process, one torch
   thread, greedy decoding with the JSON-schema constraint; labels/s and the ratio.
2. OpenAI-compatible backend against the loopback scripted server (tests/openai_server.py) answering every
   request after --delay-ms (a stand-in for model latency): requests/s at concurrency 1, 4 and 16.

    python benchmarks/label.py                     # CPU, tiny random LLaVA (~2 min on 2 CPUs)
    python benchmarks/label.py --write-results     # ... and rewrite its section of benchmarks/RESULTS.md
    python benchmarks/label.py --gpu               # on a CUDA machine: a ~0.3 B-parameter random LLaVA at 336 px

The tiny model's outputs mean nothing; the figures measure the pipeline's batching and I/O, not annotation quality.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from results import markers, mark_not_measured, write_section  # noqa: E402  benchmarks/results.py


def build_dataset(work: Path, n: int, size: int) -> Path:
    """N generated PNGs ingested in-process (`aig build-data --stages ingest --executor local`)."""
    from corpus import make_images

    from aig.pipeline.build import build
    from aig.pipeline.config import load_config

    make_images(work / "imgs", n, size=(size, size), fmt="PNG")
    out = work / "ds"
    build(load_config(None, {"output": str(out), "inputs.folders": [str(work / "imgs")], "stages": ["ingest"],
                             "runner.executor": "local", "ingest.size": size}))
    return out


def rows_of(ds: Path, job) -> list[dict]:
    from aig.labeling.run import candidates

    return candidates(ds, job, None, None, None)


def big_llava(path: Path, image_size: int = 336) -> Path:
    """A ~0.3 B-parameter random LLaVA (CLIP-B/14-like tower at 336 px, 12-layer 1024-d Llama) for GPU timing."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    from aig.labeling.tiny_vlm import build_tiny_llava

    build_tiny_llava(path)
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(path)
    proc.image_processor.size = {"shortest_edge": image_size}
    proc.image_processor.crop_size = {"height": image_size, "width": image_size}
    proc.patch_size = 14
    tok = proc.tokenizer
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                       num_attention_heads=12, image_size=image_size, patch_size=14),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=1024, intermediate_size=4096, num_hidden_layers=12,
                                num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=4096),
        image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
        pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return path


def local_backend(ds: Path, vlm: Path, batches: list[int], max_new_tokens: int, repeats: int) -> list[dict]:
    from aig.labeling.backends import BackendSpec, Decoding
    from aig.labeling.worker import LabelJob, LabelWorker
    from aig.pipeline.config import ShardConfig

    out = []
    for batch in batches:
        job = LabelJob(BackendSpec("transformers", str(vlm)), Decoding(max_new_tokens=max_new_tokens), "Describe.",
                       "bench", batch_size=batch, group=f"sft-bench-b{batch}")
        worker = LabelWorker(job, threads=1)
        rows = rows_of(ds, job)
        worker.run_chunk(str(ds), 900 + batch, rows[:batch], ShardConfig(), "bench")  # warm-up
        best = None
        for r in range(repeats):
            t = time.perf_counter()
            stats = worker.run_chunk(str(ds), 1000 + 10 * batch + r, rows, ShardConfig(), "bench")
            s = time.perf_counter() - t
            best = s if best is None else min(best, s)
        # the bare batched generate loop: images already decoded in memory, processor + model.generate with the same
        # decoding settings and JSON constraint (so the same tokens), nothing read, parsed, retried or written
        from aig.labeling.schema import json_schema

        images = worker._inputs(Path(ds), rows)
        bare = None
        for r in range(repeats):
            t = time.perf_counter()
            for i in range(0, len(images), batch):
                worker.backend.generate(images[i:i + batch], job.prompt, json_schema())
            s = time.perf_counter() - t
            bare = s if bare is None else min(bare, s)
        out.append({"batch": batch, "images": len(rows), "seconds": best, "labels_s": len(rows) / best,
                    "device": worker.backend.device, "parsed": stats["labelled"], "bare_s": bare,
                    "vs_bare": bare / best})
    base = out[0]["labels_s"]
    for r in out:
        r["ratio"] = r["labels_s"] / base
    return out


def http_backend(ds: Path, n: int, delay_ms: float, levels: list[int]) -> list[dict]:
    from openai_server import ScriptedServer

    from aig.labeling.backends import BackendSpec, Decoding, OpenAIBackend
    from aig.labeling.worker import LabelJob, LabelWorker

    out = []
    with ScriptedServer(delay_s=delay_ms / 1000) as server:
        for c in levels:
            spec = BackendSpec("openai", "bench", base_url=server.url, concurrency=c)
            worker = LabelWorker(LabelJob(spec, Decoding(), "Describe.", "bench", group="x"))
            images = worker._inputs(ds, rows_of(ds, worker.job))
            inputs = (images * (n // len(images) + 1))[:n]
            backend: OpenAIBackend = worker.backend
            backend.generate(inputs[:c], "Describe.", None)  # warm-up: sessions and connections
            t = time.perf_counter()
            replies = backend.generate(inputs, "Describe.", {"type": "object"})
            s = time.perf_counter() - t
            assert all(r.error is None for r in replies), [r.error for r in replies if r.error][:3]
            out.append({"concurrency": c, "requests": len(inputs), "seconds": s, "req_s": len(inputs) / s})
    for r in out:
        r["ratio"] = r["req_s"] / out[0]["req_s"]
    return out


def render(args, local: list[dict], http: list[dict], seconds: float) -> str:
    load = os.getloadavg()[0]
    lines = [f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `python benchmarks/label.py"
             f"{' --gpu' if args.gpu else ''} --n {args.n}` ({seconds / 60:.1f} min in all); {platform.processor() or platform.machine()}, "
             f"nproc {os.cpu_count()}, load average (1 min) {load:.2f}.", "",
             f"Local backend ({'~0.3 B random LLaVA, 336 px, GPU' if args.gpu else 'tiny random LLaVA, 1 torch thread'}; "
             f"greedy, JSON-schema-constrained, max {args.max_new_tokens} new tokens; full `LabelWorker.run_chunk`; "
             f"best of {args.repeats}):", "",
             "| batch | images | seconds | labels/s | vs one at a time | bare generate loop (s) | **vs bare loop** "
             "(target >= 0.9x) | device |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {r['batch']} | {r['images']} | {r['seconds']:.2f} | {r['labels_s']:.2f} | {r['ratio']:.2f}x | "
              f"{r['bare_s']:.2f} | **{r['vs_bare']:.2f}x** | {r['device']} |" for r in local]
    lines += ["", "Bare generate loop: the same images already decoded in memory, the backend's processor + "
              "`model.generate` with the same greedy decoding and JSON constraint (the same tokens), batch by batch; "
              "nothing read from the tars, parsed, retried or written."]
    if http:
        lines += ["", f"OpenAI-compatible backend against the loopback server, {args.delay_ms:.0f} ms per reply:", "",
                  "| concurrency | requests | seconds | requests/s | vs concurrency 1 |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['concurrency']} | {r['requests']} | {r['seconds']:.2f} | {r['req_s']:.1f} | {r['ratio']:.2f}x |"
                  for r in http]
    return "\n".join(lines) + "\n"


def write_results(text: str, gpu: bool) -> None:
    write_section("label-gpu" if gpu else "label", "label.py", f"Labeling benchmark ({'GPU' if gpu else 'CPU'})",
                  "Labels/s batched vs one image at a time with the local backend; requests/s at concurrency 1/4/16 "
                  "against the loopback server. Re-run with `python benchmarks/label.py --write-results` (and `--gpu` "
                  "on a CUDA machine).", text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32, help="images")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--delay-ms", type=float, default=50.0)
    ap.add_argument("--requests", type=int, default=160, help="requests per concurrency level")
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--write-results", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="aig-bench-label-"))
    try:
        ds = build_dataset(work, args.n, 96)
        if args.gpu:
            vlm = big_llava(work / "vlm")
            local = local_backend(ds, vlm, [1, args.batch, 4 * args.batch], args.max_new_tokens, args.repeats)
            http = []
        else:
            from aig.labeling.tiny_vlm import build_tiny_llava

            vlm = build_tiny_llava(work / "vlm")
            local = local_backend(ds, vlm, [1, args.batch], args.max_new_tokens, args.repeats)
            http = http_backend(ds, args.requests, args.delay_ms, [1, 4, 16])
        text = render(args, local, http, time.perf_counter() - start)
        print(text)
        print(json.dumps({"local": local, "http": http}))
        if args.write_results:
            write_results(text, args.gpu)
            if not args.gpu:
                import torch

                if not torch.cuda.is_available():
                    mark_not_measured(*markers("label-gpu", "label.py"),
                                      "no CUDA device; run benchmarks/gpu_all.sh on a GPU machine")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
