"""Where a branch's training data is: shard lists, pair counts and run ids from the dataset's catalog."""

from __future__ import annotations

from pathlib import Path

from aig.manifests.errors import AigError


class DataError(AigError, ValueError):
    """The dataset lacks what training needs; the message says what to build."""


def _rows(root: Path, query: str) -> list[tuple]:
    from aig.manifests.catalog import CatalogError, run_query

    try:
        con, rel = run_query(root, query)
    except CatalogError as e:
        raise DataError(str(e)) from None
    try:
        return rel.fetchall()
    finally:
        con.close()


def split_shards(root: Path, task: str, split: str) -> list[str]:
    """Absolute paths of the tars holding `task` samples of `split` (sorted; from the catalog only)."""
    rows = _rows(root, f"select distinct shard from samples where task = '{task}' and split = '{split}' order by 1")
    from aig.pipeline.shards import missing_shard

    missing = missing_shard(root, [r[0] for r in rows])
    if missing:
        raise DataError(missing)
    return [str(root / r[0]) for r in rows]


def run_ids(root: Path, task: str) -> list[str]:
    return [r[0] for r in _rows(root, f"select distinct run_id from samples where task = '{task}' order by 1")]


def provenance(root: Path, task: str, shards: list[str]) -> dict:
    """The dataset a model was trained on: its folder, the build runs and the shards read."""
    return {"root": str(root.resolve()), "run_ids": run_ids(root, task),
            "train_shards": [str(Path(s).relative_to(root)) for s in shards]}
