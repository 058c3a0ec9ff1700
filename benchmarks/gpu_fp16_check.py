#!/usr/bin/env python
"""GPU check: an AutoencoderKL that overflows in float16 (the GPU default) must be retried in float32.

Builds the tiny overflowing autoencoder of tests/test_autoencoders.py (force_upcast off), runs
`aig build-data --stages ingest,reconstruct` with it on CUDA through the CLI, and prints whether each
reconstruction recorded `upcast: non_finite` and has a finite PSNR, with no failures. Exit 0 on success.

    python benchmarks/gpu_fp16_check.py
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    import numpy as np
    import torch
    from PIL import Image

    from aig.generators.tiny_models import build_tiny_autoencoder
    from aig.manifests.catalog import query_rows

    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="aig-fp16-"))
    vae = build_tiny_autoencoder(tmp / "overflow", fault="fp16_overflow", force_upcast=False)
    rng = np.random.default_rng(0)
    (tmp / "in").mkdir()
    for i in range(4):  # smooth random colour fields, 96x64
        small = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
        Image.fromarray(small).resize((96, 64), Image.Resampling.BICUBIC).save(tmp / "in" / f"img{i}.png")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-c", "from aig.cli import main; main()", "build-data", "-o", str(tmp / "ds"),
           "--input-dir", str(tmp / "in"), "--executor", "local", "--stages", "ingest,reconstruct",
           "--autoencoder", str(vae)]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
    if proc.returncode != 0:
        return 1
    fakes = query_rows(tmp / "ds", "select recon_psnr, provenance from samples where label = 'fake'")
    failures = query_rows(tmp / "ds", "select reason from failures where stage = 'reconstruct'")
    provs = [json.loads(r["provenance"]) for r in fakes]
    upcast = bool(fakes) and all(p["upcast"] == "non_finite" and p["dtype"] == "float16" and p["device"] == "cuda"
                                 for p in provs)
    finite = bool(fakes) and all(r["recon_psnr"] is not None and r["recon_psnr"] == r["recon_psnr"] for r in fakes)
    print(f"fakes {len(fakes)}, failures {len(failures)}, upcast recorded: {upcast}, outputs finite: {finite}")
    return 0 if upcast and finite and len(fakes) == 4 and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
