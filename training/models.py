"""Pixel-branch models: any timm backbone by name with a 1-logit head; LoRA through peft.

`aig_tinycnn` is registered with timm here: a small CNN without early downsampling (the autoencoder
artifacts live in the highest frequencies, which a strided stem throws away), the CPU default.
"""

from __future__ import annotations

from pathlib import Path

from aig.manifests.errors import AigError

_REGISTERED = False


class ModelError(AigError, ValueError):
    """A model name, weights file or LoRA setting cannot be used; the message says what to do."""


def _register_tiny() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    from timm.models import register_model
    from torch import nn

    class TinyCNN(nn.Module):
        """7 conv3x3+BN+ReLU layers; full resolution for the first two, then three stride-2 stages."""

        default_cfg = pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "num_classes": 1,
                                        "input_size": (3, 64, 64), "classifier": "head", "architecture": "aig_tinycnn"}

        def __init__(self, num_classes: int = 1, in_chans: int = 3, widths=(32, 64, 64, 96, 96, 128, 128),
                     strides=(1, 1, 2, 1, 2, 1, 2), drop_rate: float = 0.0, **_):
            super().__init__()
            layers, c = [], in_chans
            for w, s in zip(widths, strides):
                layers += [nn.Conv2d(c, w, 3, s, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            self.features = nn.Sequential(*layers)
            self.num_features = c
            self.drop = nn.Dropout(drop_rate)
            self.head = nn.Linear(c, num_classes) if num_classes else nn.Identity()

        def forward_features(self, x):
            return self.features(x)

        def forward_head(self, x, pre_logits: bool = False):
            x = self.drop(x.mean((2, 3)))
            return x if pre_logits else self.head(x)

        def forward(self, x):
            return self.forward_head(self.forward_features(x))

        def get_classifier(self):
            return self.head

    @register_model
    def aig_tinycnn(pretrained: bool = False, **kwargs):
        kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None)
        model = TinyCNN(**kwargs)
        if pretrained:
            raise ModelError("aig_tinycnn has no published weights; pass --pretrained PATH to a .safetensors file")
        return model

    _REGISTERED = True


def _head_name(model) -> str:
    """Dotted module name of the classifier (timm's pretrained_cfg 'classifier', else 'head'/'fc')."""
    names = dict(model.named_modules())
    cfg = getattr(model, "pretrained_cfg", None) or {}
    for cand in (cfg.get("classifier"), "head", "head.fc", "fc", "classifier"):
        if cand and cand in names:
            return cand
    raise ModelError("could not find the model's classifier head to replace")


def create_backbone(name: str, pretrained: str | None = None, drop_rate: float = 0.0,
                    img_size: int | None = None):
    """A timm model with a 1-logit head. `pretrained`: None (random), a local .safetensors/.bin file or a
    folder holding one (model.safetensors / pytorch_model.bin / open_clip_*), or 'hub' (timm's own weights)."""
    import timm

    _register_tiny()
    if not timm.is_model(name):
        raise ModelError(f"unknown timm model {name!r}: see `timm.list_models('*pattern*')` for names")
    kwargs: dict = {"num_classes": 1, "drop_rate": drop_rate}
    if img_size is not None and ("vit" in name or "dinov2" in name):
        kwargs["img_size"] = img_size  # ViTs resize their position embeddings to the crop size
    if pretrained in (None, "", "none"):
        return timm.create_model(name, pretrained=False, **kwargs)
    if pretrained == "hub":
        try:
            return timm.create_model(name, pretrained=True, **kwargs)
        except Exception as e:  # offline or no weights published
            raise ModelError(f"could not fetch timm weights for {name!r} ({e}); download them once and pass "
                             "--pretrained PATH (a .safetensors file or folder)") from None
    path = Path(pretrained)
    if path.is_dir():
        files = [path / f for f in ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors")
                 if (path / f).is_file()]
        if not files:
            raise ModelError(f"no model.safetensors or pytorch_model.bin in folder {path}")
        path = files[0]
    if not path.is_file():
        raise ModelError(f"--pretrained {pretrained!r}: no such file or folder (use a path, 'hub' or 'none')")
    model = timm.create_model(name, pretrained=False, **kwargs)
    load_weights(model, path)
    return model


def read_state_dict(path: Path) -> dict:
    """Tensors of a .safetensors file, or of a torch file loaded with weights_only=True (no pickled code)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    for k in ("state_dict", "model", "module"):
        if isinstance(sd, dict) and isinstance(sd.get(k), dict):
            sd = sd[k]
    return sd


def load_weights(model, path: Path) -> None:
    """Load backbone weights; the classifier head is left fresh when its shape differs (e.g. 1000 -> 1 class)."""
    try:
        sd = read_state_dict(path)
    except Exception as e:
        raise ModelError(f"cannot read weights {path}: {e}") from None
    sd = {k.removeprefix("module.").removeprefix("model."): v for k, v in sd.items()}
    own = model.state_dict()
    head = _head_name(model)
    fit = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    missing = [k for k in own if k not in fit and not k.startswith(head + ".")]
    if missing:
        raise ModelError(f"weights {path} do not fit model {type(model).__name__}: {len(missing)} tensors missing or "
                         f"of another shape (first: {missing[:3]})")
    model.load_state_dict(fit, strict=False)


def lora_targets(model, patterns: list[str] | None) -> list[str]:
    """Module names that get LoRA: those matching the given suffixes, else every Linear/Conv2d but the head."""
    from torch import nn

    head = _head_name(model)
    out = []
    for n, m in model.named_modules():
        if not n or n == head or n.startswith(head + "."):
            continue
        if patterns:
            if any(n == p or n.endswith("." + p) for p in patterns) and isinstance(m, (nn.Linear, nn.Conv2d)):
                out.append(n)
        elif isinstance(m, (nn.Linear, nn.Conv2d)):
            out.append(n)
    if not out:
        raise ModelError(f"no Linear/Conv2d module matches LoRA targets {patterns}")
    return out


def apply_lora(model, rank: int, alpha: float, dropout: float, targets: list[str] | None):
    """Wrap with a peft LoRA adapter; the head stays fully trainable (modules_to_save)."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=lora_targets(model, targets),
                     modules_to_save=[_head_name(model)], bias="none")
    return get_peft_model(model, cfg)


def merged(model):
    """The plain timm module with any LoRA merged into its weights (for export and inference)."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, DistributedDataParallel):
        model = model.module
    if hasattr(model, "merge_and_unload"):
        import copy

        return copy.deepcopy(model).merge_and_unload()
    return model


def normalisation(model) -> dict:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return {"mean": list(cfg.get("mean", (0.485, 0.456, 0.406))), "std": list(cfg.get("std", (0.229, 0.224, 0.225)))}
