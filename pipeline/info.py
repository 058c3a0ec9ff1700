"""Dataset-level info files derived from the done markers, readable by standard WebDataset consumers.

`info.json` at the root and `_info.json` in each shard group use timm's layout
(`splits.<name>.{name, num_samples, filenames, shard_lengths}`, filenames relative to the file).
"""

from __future__ import annotations

import json
from pathlib import Path

from aig.manifests.dataset import Dataset
from aig.manifests.layout import CATALOG_FILE, SHARDS_DIR, atomic_write

from .plan import SPLITS

FORMAT_VERSION = 1


def _splits(shards: list[dict], strip: str = "") -> dict:
    out = {}
    for split in SPLITS:
        mine = sorted((s for s in shards if s["split"] == split), key=lambda s: s["path"])
        if mine:
            out[split] = {
                "name": split,
                "num_samples": sum(s["samples"] for s in mine),
                "filenames": [s["path"][len(strip):] for s in mine],
                "shard_lengths": [s["samples"] for s in mine],
            }
    return out


def write_info(root: Path) -> dict:
    ds = Dataset(root)
    markers = ds.done_markers()
    shards = [s for m in markers.values() for s in m["shards"]]
    groups: dict[str, list[dict]] = {}
    for s in shards:
        groups.setdefault(s["path"].split("/")[1], []).append(s)
    for group, group_shards in groups.items():
        prefix = f"{SHARDS_DIR}/{group}/"
        group_info = {"name": group, "splits": _splits(group_shards, prefix)}
        atomic_write(ds.group_dir(group) / "_info.json", json.dumps(group_info, indent=1).encode())
    info = {
        "format": "aig-dataset",
        "format_version": FORMAT_VERSION,
        "splits": _splits(shards),
        "groups": {g: _splits(s) for g, s in sorted(groups.items())},
        "counts": {
            "chunks": len(markers),
            "inputs": sum(m["inputs"] for m in markers.values()),
            "samples": sum(m["samples"] for m in markers.values()),
            "failures": sum(m["failures"] for m in markers.values()),
            "shards": len(shards),
            "shard_bytes": sum(s["bytes"] for s in shards),
        },
        "tables": {**{t: ds.table_glob(t) for t in ("samples", "failures", "runs")}, "catalog": CATALOG_FILE},
    }
    atomic_write(ds.info_path, json.dumps(info, indent=1).encode())
    from .card import write_card

    write_card(root, info)  # the Hugging Face dataset card, kept current with the shards
    return info


SUMMARY_QUERIES = (
    ("samples", "select task, split, label, coalesce(generator, '-') as generator, count(*) as n "
                "from samples group by all order by all"),
    ("failures", "select stage, reason, count(*) as n from failures group by all order by n desc, reason"),
)


def summary_lines(root: Path) -> list[str]:
    """Counts by task, split, label and generator, and failures by stage and reason, as printed by `aig info`."""
    import duckdb

    from aig.manifests.catalog import damaged_file_error

    out = []
    for title, query in SUMMARY_QUERIES:
        try:
            rows = Dataset(root).query(query)
        except duckdb.Error as e:  # a damaged manifest Parquet file
            raise damaged_file_error(root, e) from None
        out.append(f"{title}:" + ("" if rows else " none"))
        out += ["  " + "  ".join(str(v) for v in r.values()) for r in rows]
    return out

