"""Models from a local folder or the hub: the one load error, and config files read without torch."""

from __future__ import annotations

import os
from pathlib import Path

from aig.manifests.errors import AigError


class ModelLoadError(AigError, RuntimeError):
    """A model could not be loaded; the message names it and how to pass a local path."""


def load_error(kind: str, model: str, err: Exception) -> ModelLoadError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return ModelLoadError(
        f"cannot load {kind} '{model}': {type(err).__name__}: {err}. "
        f"{'HF_HUB_OFFLINE=1 is set, so only local files are used. ' if offline else ''}"
        "Pass a local folder (one that holds config.json and the weights, e.g. made with save_pretrained "
        "or `huggingface-cli download`) instead of a hub id, or check the id and your network."
    )


def read_model_json(kind: str, model: str, filename: str, subfolder: str | None = None,
                    revision: str | None = None, path: str | None = None) -> dict:
    """One JSON file of a model (config.json, model_index.json) from a local folder or the hub.

    Used to check a model in the driver: no torch or diffusers import, and a bad id fails in seconds.
    `path` is where `model` lives when the name is an alias (default: the name itself).
    """
    import json

    path = path or model
    try:
        if os.path.isdir(path):
            return json.loads(Path(path, subfolder or "", filename).read_text())
        from huggingface_hub import hf_hub_download

        local = Path(hf_hub_download(path, filename, subfolder=subfolder or None, revision=revision or None))
        data = json.loads(local.read_text())
        parts = local.parts  # the hub cache keeps files under snapshots/<commit hash>/
        if "snapshots" in parts:
            data["_commit_hash"] = parts[parts.index("snapshots") + 1]
        return data
    except Exception as e:  # missing file, unknown repo, no network, bad JSON: all mean "cannot load"
        raise load_error(kind, model, e) from None
