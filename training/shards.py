"""Where a branch's training data is: shard lists, pair counts and run ids from the dataset's catalog."""

from __future__ import annotations

from pathlib import Path

from aig.manifests.errors import AigError


class DataError(AigError, ValueError):
    """The dataset lacks what training needs; the message says what to build."""


def column(root: Path, query: str, params: list) -> list:
    """The one column of a catalog query's rows (`?` placeholders for params); a missing catalog is a DataError."""
    from aig.manifests.catalog import CatalogError
    from aig.manifests.dataset import Dataset

    try:
        return [next(iter(r.values())) for r in Dataset(root).query(query, params)]
    except CatalogError as e:
        raise DataError(str(e)) from None


def split_shards(root: Path, task: str, split: str) -> list[str]:
    """Absolute paths of the tars holding `task` samples of `split` (sorted; from the catalog only)."""
    shards = column(root, "select distinct shard from samples where task = ? and split = ? order by 1", [task, split])
    from aig.pipeline.shards import missing_shard

    missing = missing_shard(root, shards)
    if missing:
        raise DataError(missing)
    return [str(root / s) for s in shards]


def run_ids(root: Path, task: str) -> list[str]:
    return column(root, "select distinct run_id from samples where task = ? order by 1", [task])


def provenance(root: Path, task: str, shards: list[str]) -> dict:
    """The dataset a model was trained on: its folder, the build runs and the shards read."""
    return {"root": str(root.resolve()), "run_ids": run_ids(root, task),
            "train_shards": [str(Path(s).relative_to(root)) for s in shards]}
