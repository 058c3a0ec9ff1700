"""Held-out report for a pixel checkpoint: balanced accuracy / AUROC on one split's pairs, as stored and after
JPEG re-encoding of both classes. Usage: python -m aig.training.holdout CHECKPOINT -d DATASET [--split test] [--jpeg 75]"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path


def jpeg(img, quality: int):
    from PIL import Image

    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def holdout_report(checkpoint: Path, dataset: Path, split: str = "test", jpeg_qualities=(75,)) -> dict:
    """Metrics on the split's pixel pairs at the checkpoint's threshold: as stored, then per JPEG quality."""
    from .checkpoint import load_pixel_model, score_images
    from .metrics import auroc, balanced_accuracy
    from .pixel_stream import Skips, read_pairs
    from .shards import DataError, split_shards

    model, cfg = load_pixel_model(checkpoint)
    skips = Skips()
    pairs = list(read_pairs(split_shards(dataset, "pixel", split), skips))
    if not pairs:
        raise DataError(f"no readable pixel pairs in the {split} split of {dataset}")
    labels = [0, 1] * len(pairs)
    out = {"split": split, "pairs": len(pairs), "threshold": cfg["threshold"], "skipped": skips.total}
    for name, fn in [("stored", lambda im: im)] + [(f"jpeg{q}", lambda im, q=q: jpeg(im, q)) for q in jpeg_qualities]:
        s = score_images(model, cfg, [fn(im) for _, r, f in pairs for im in (r, f)])
        out[name] = {"balanced_accuracy": balanced_accuracy(s, labels, cfg["threshold"]), "auroc": auroc(s, labels),
                     "real_accuracy": float((s[0::2] <= cfg["threshold"]).mean()),
                     "fake_accuracy": float((s[1::2] > cfg["threshold"]).mean())}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("-d", "--dataset", type=Path, default=Path("aig-data/default"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--jpeg", type=int, action="append", default=None, help="JPEG quality (repeatable) [75]")
    a = ap.parse_args(argv)
    try:
        rep = holdout_report(a.checkpoint, a.dataset, a.split, a.jpeg or [75])
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rep, indent=1))
    for name in ["stored"] + [k for k in rep if k.startswith("jpeg")]:
        m = rep[name]
        print(f"{rep['split']} split, {rep['pairs']} photo pairs, {name}: balanced accuracy {m['balanced_accuracy']:.3f} "
              f"(real {m['real_accuracy']:.2f}, fake {m['fake_accuracy']:.2f}), AUROC {m['auroc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
