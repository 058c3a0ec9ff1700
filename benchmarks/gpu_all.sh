#!/usr/bin/env bash
# The GPU benchmark sections in one go, for a CUDA machine (sized for one H200 + 16 CPUs: ~6-7 minutes).
#
# Needs (nothing is installed here): a Python environment with aig's dependencies (`pip install -e .[dev]`)
# and a CUDA build of torch, found as $PYTHON (default: .venv/bin/python when present, else python3).
# No model hub, no network: every model is built from its config with random weights (seed 0).
#
# Each step rewrites its own GPU section of benchmarks/RESULTS.md (--write-results), prints its figures, and
# also leaves its markdown under $OUT (default /tmp) when it writes one. A failing step does not stop the others;
# the script exits non-zero if any failed.
#   1. reconstruct: aig's ReconstructWorker vs the bare autoencoder (SD-VAE-sized AutoencoderKL, 512 px, fp16,
#      same batch; encode -> sample -> decode only) and vs a plain one-image loop (on 96 of the 512 images);
#      batches 8 and 16; 8 chunks of 64, two at a time as a GPU actor takes them. ~3 min
#   2. generate: aig's TextToImageWorker vs a bare batched diffusers loop (SD-1.5-sized pipeline, 512 px, fp16,
#      20 steps, batch 8). ~1.5 min
#   3. label: the local VLM backend (~0.3 B random LLaVA, 336 px) at batch 1/8/32, and vs a bare batched
#      generate loop (same decoding and JSON constraint). ~1.5 min
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
OUT=${OUT:-/tmp}
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(0), "| torch", torch.__version__)' || exit 2
echo "nproc $(nproc); $(uptime)"
failed=0
step() {  # step NAME TIMEOUT_S ARGS...
  local name=$1 limit=$2; shift 2
  echo "== $name ($(date -u +%H:%M:%S) UTC)"
  local t0=$SECONDS
  timeout "$limit" "$PYTHON" "$@" || { echo "!! $name failed (exit $?)"; failed=1; }
  echo "== $name took $((SECONDS - t0)) s"
}
step reconstruct 300 benchmarks/reconstruct.py --gpu --n 512 --chunk 64 --plain-n 96 --batch 8 16 --repeats 2 \
    --write-results --markdown-out "$OUT/reconstruct-gpu.md"
step generate 150 benchmarks/generate.py --n 32 --batch 8 --steps 20 --repeats 2 --write-results
step label 150 benchmarks/label.py --gpu --n 32 --write-results
echo "$(uptime)"
exit $failed
