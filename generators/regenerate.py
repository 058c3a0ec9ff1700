"""`aig regenerate KEY`: rebuild one generated sample from its manifest row and provenance.

The sample's whole batch is re-run (batch composition can change floating-point results), with the
recorded seeds, model, dtype and settings; the result is compared byte for byte with the stored one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from aig.manifests.dataset import Dataset
from aig.pipeline.config import GenerateConfig, InpaintConfig, ReconstructConfig
from aig.pipeline.decode import encode_image
from aig.pipeline.shards import read_member

from aig.manifests.errors import AigError

from .reconstruct import AutoencoderSpec, provenance_of


class RegenerateError(AigError, RuntimeError):
    """The sample cannot be regenerated; the message says why."""


@dataclass
class Regenerated:
    key: str
    data: bytes
    ext: str
    stored_sha256: str
    identical: bool


def _samples(root: Path) -> dict[str, dict]:
    return {r["key"]: r for r in Dataset(root).read_table("samples")}


def _image(root: Path, row: dict):
    from PIL import Image

    return Image.open(io.BytesIO(read_member(root, row))).convert("RGB")


def regenerate(root: Path, key: str) -> Regenerated:
    import hashlib

    rows = _samples(root)
    row = rows.get(key)
    if row is None:
        raise RegenerateError(f"no sample with key '{key}' in {root}")
    prov = provenance_of(row)
    kind = prov.get("kind")
    if kind in ("autoencoder", "inpaint"):
        image = _pixel(root, rows, row, prov)
    elif kind == "text-to-image":
        image = _text2image(rows, row, prov)
    else:
        raise RegenerateError(f"sample '{key}' is not generated (kind: {kind or row['label']}); nothing to regenerate")
    quality = prov.get("jpeg_quality")
    data, ext = encode_image(image, "jpeg" if quality else "png", quality or 95)
    return Regenerated(key, data, ext, row["sha256"], hashlib.sha256(data).hexdigest() == row["sha256"])


def _pixel(root: Path, rows: dict, row: dict, prov: dict):
    by_pair = {r["pair_id"]: r for r in rows.values() if r["label"] == "fake" and r["generator"] == row["generator"]}
    spec = AutoencoderSpec(row["generator"], prov["model_id"], prov.get("subfolder"), prov.get("revision"))
    items = []
    for pair_id in prov["batch"]:
        fake = by_pair[pair_id]
        p = provenance_of(fake)
        source = rows[p["source_key"]]
        items.append((source, _image(root, source).crop(tuple(p["crop"])), tuple(p["crop"]), p["seed"]))
    if prov["kind"] == "inpaint":
        from .inpaint import InpaintWorker

        cfg = InpaintConfig(mask=prov["mask"], steps=prov["steps"], strength=prov["strength"],
                            guidance=prov["guidance"], use_caption=bool(prov.get("prompt")), dtype=prov["dtype"])
        worker = InpaintWorker(spec, cfg, threads=prov.get("threads", 1))
    else:
        from .reconstruct import ReconstructWorker

        latent = prov["latent"] if prov["latent"] in ("sample", "mode") else "sample"
        worker = ReconstructWorker(spec, ReconstructConfig(latent=latent, dtype=prov["dtype"]),
                                   threads=prov.get("threads", 1))
    images = worker._batch(items, prov.get("oom_splits", 0))
    return images[prov["batch"].index(row["pair_id"])][0]


def _text2image(rows: dict, row: dict, prov: dict):
    from .text2image import PipelineSpec, TextToImageWorker

    cfg = GenerateConfig(steps=prov["steps"], guidance=prov["guidance"], width=prov["width"], height=prov["height"],
                         aspect="fixed",
                         negative_prompt=prov.get("negative_prompt") or "", scheduler=prov["scheduler"],
                         safety_checker=prov.get("safety_checker") == "on", dtype=prov["dtype"])
    worker = TextToImageWorker(PipelineSpec(row["generator"], prov["model_id"], prov.get("revision")), cfg,
                               threads=prov.get("threads", 1))
    jobs = []
    for key in prov["batch"]:
        r = rows[key]
        p = provenance_of(r)
        jobs.append({"key": key, "row": r, "prompt": r["prompt"], "seed": r["seed"], "width": p["width"],
                     "height": p["height"]})
    images = worker.render(jobs, prov.get("oom_splits", 0))
    return images[prov["batch"].index(row["key"])][0]
