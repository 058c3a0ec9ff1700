#!/usr/bin/env bash
# GPU benchmark sections, one script for a CUDA machine (written for one H200 + 16 CPUs, ~6 minutes).
#
# Needs (nothing is installed here): a Python environment with aig's dependencies and a CUDA torch
# (e.g. the repo's .venv carried over, or `pip install -e .[dev]`), found as $PYTHON (default: .venv/bin/python,
# else python3). No model hub: the SD-VAE-sized AutoencoderKL is built from its config with random weights.
#
# Runs, each with --write-results (rewrites its GPU section of benchmarks/RESULTS.md) and prints the figures:
#   reconstruct: aig's ReconstructWorker vs the bare autoencoder (same model, fp16, batch; encode -> decode only)
#                and vs a plain one-image loop, at 512 px; batches 8 and 16.
# Not covered here yet: text-to-image vs a bare diffusers loop, VLM labelling vs a bare generate loop.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(0), "|", torch.__version__)'
nproc; uptime
# ~3-4 min on an H200: 5 configurations x 2 repeats x 256 images (+ model build, image generation, warm-up)
timeout 420 "$PYTHON" benchmarks/reconstruct.py --gpu --n 256 --chunk 64 --batch 8 16 --repeats 2 --write-results \
    --markdown-out "${OUT:-/tmp}/reconstruct-gpu.md"
uptime
