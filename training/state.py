"""Resumable training state without pickles: tensors in safetensors, everything else in JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def optimizer_to_flat(opt) -> tuple[dict, dict]:
    """(tensors, json) from optimizer.state_dict(); non-tensor state values go to the JSON."""
    import torch

    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(tensors: dict, meta: dict) -> dict:
    state: dict = {}
    for name, v in tensors.items():
        if name.startswith("optim."):
            _, pid, k = name.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_state(folder: Path, model_state: dict, opt, meta: dict, rng: dict) -> None:
    """folder/state.safetensors (model + optimizer + RNG states, keys 'rng.*') and folder/state.json."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    otensors, ometa = optimizer_to_flat(opt)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    tensors.update(otensors)
    tensors.update({f"rng.{k}": v for k, v in rng.items()})
    _atomic(folder / "state.safetensors", lambda p: save_file(tensors, str(p)))
    _atomic(folder / "state.json", lambda p: p.write_text(json.dumps({**meta, "optimizer": ometa}, indent=1)))


def load_state(folder: Path) -> tuple[dict, dict, dict, dict]:
    """(model_state, optimizer_state_dict, meta, rng tensors)."""
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "state.safetensors"))
    meta = json.loads((folder / "state.json").read_text())
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    rng = {k: v for k, v in tensors.items() if k.startswith("rng.")}
    return model, optimizer_from_flat(tensors, meta["optimizer"]), meta, rng
