"""Exported pixel detectors: `model.safetensors` + `config.json` in one folder; loading and scoring.

Stable API (used by evaluation):
    load_pixel_model(path) -> (torch.nn.Module, dict)
    score_images(model, cfg, pil_images, batch_size=32, device=None) -> numpy float array of P(fake)
"""

from __future__ import annotations

import json
from pathlib import Path

from aig.manifests.errors import AigError

EXPORT_FORMAT = "aig-pixel-detector"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(AigError, ValueError):
    """A checkpoint folder is missing or unusable; the message names it."""


def save_pixel_export(folder: Path, model, cfg: dict) -> Path:
    """Write the (LoRA-merged) model's weights and its config; returns the folder."""
    from safetensors.torch import save_file

    from .models import merged

    folder.mkdir(parents=True, exist_ok=True)
    plain = merged(model)
    state = {k: v.detach().cpu().contiguous() for k, v in plain.state_dict().items()}
    tmp = folder / f".{WEIGHTS}.tmp"
    save_file(state, str(tmp), metadata={"format": EXPORT_FORMAT})
    tmp.replace(folder / WEIGHTS)
    from .metrics import finite

    (folder / f".{CONFIG}.tmp").write_text(json.dumps(finite({"format": EXPORT_FORMAT, **cfg}), indent=1, sort_keys=True))
    (folder / f".{CONFIG}.tmp").replace(folder / CONFIG)
    return folder


def _resolve(path) -> Path:
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not (p / CONFIG).is_file() or not (p / WEIGHTS).is_file():
        raise CheckpointError(f"'{path}' is not a pixel checkpoint: expected {CONFIG} and {WEIGHTS} in it "
                              "(the folder `aig train --branch pixel` writes as OUTPUT/final or OUTPUT/best)")
    return p


def load_pixel_model(path) -> tuple:
    """(model in eval mode on CPU, config dict) from an exported folder (or a file inside it)."""
    from safetensors.torch import load_file

    from .models import create_backbone

    folder = _resolve(path)
    cfg = json.loads((folder / CONFIG).read_text())
    if cfg.get("format") != EXPORT_FORMAT:
        raise CheckpointError(f"{folder / CONFIG} is not an {EXPORT_FORMAT} config")
    model = create_backbone(cfg["model"], None, img_size=cfg.get("img_size"))
    missing, unexpected = model.load_state_dict(load_file(str(folder / WEIGHTS)), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{folder / WEIGHTS} does not match model {cfg['model']!r}: "
                              f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval(), cfg


def image_tiles(img, cfg: dict):
    """Normalised tiles (N, 3, crop, crop) of one PIL image, following cfg's crop size, tiling and normalisation."""
    import numpy as np
    import torch

    from .tiles import tile_boxes

    crop = int(cfg["crop_size"])
    img = img.convert("RGB")
    arr = np.asarray(img, dtype=np.float32) / 255.0
    mean = np.asarray(cfg["mean"], np.float32)
    std = np.asarray(cfg["std"], np.float32)
    arr = (arr - mean) / std
    h, w = arr.shape[:2]
    out = []
    for x0, y0, x1, y1 in tile_boxes(w, h, crop, int(cfg.get("max_tiles", 16))):
        t = np.zeros((crop, crop, 3), np.float32)  # padding = the normalisation mean
        part = arr[y0:min(y1, h), x0:min(x1, w)]
        t[:part.shape[0], :part.shape[1]] = part
        out.append(t)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def tile_scores(model, cfg: dict, pil_images, batch_size: int = 32, device=None):
    """(P(fake) per tile, index of the image each tile came from), both numpy arrays."""
    import numpy as np
    import torch

    device = device or next(model.parameters()).device
    tiles, owner = [], []
    for i, img in enumerate(pil_images):
        t = image_tiles(img, cfg)
        tiles.append(t)
        owner += [i] * len(t)
    if not tiles:
        return np.zeros(0, np.float64), np.zeros(0, np.int64)
    allt = torch.cat(tiles)
    probs = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for s in range(0, len(allt), batch_size):
            logits = model(allt[s:s + batch_size].to(device)).float().reshape(-1)
            probs.append(torch.sigmoid(logits).cpu())
    model.train(was_training)
    return torch.cat(probs).double().numpy(), np.asarray(owner, np.int64)


def score_images(model, cfg: dict, pil_images, batch_size: int = 32, device=None):
    """P(fake) per image: the mean over the image's tiles of sigmoid(logit); compare with cfg['threshold']."""
    import numpy as np

    images = list(pil_images)
    p, owner = tile_scores(model, cfg, images, batch_size, device)
    return np.asarray([p[owner == i].mean() for i in range(len(images))], np.float64)
