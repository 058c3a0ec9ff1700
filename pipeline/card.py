"""The dataset card (`README.md` at the dataset root) that Hugging Face `datasets` and the Hub read.

One config per shard group (`load_dataset(DATASET, "real")`), data files per split, and the declared
features of every record (the image, its JSON metadata as a struct, `__key__`, `__url__`): declared, so
that a field absent from the first records is neither dropped nor mistyped. Types come from the
manifest schema, the manifest's provenance JSON (all rows, merged by DuckDB) and, for groups whose
records carry fields beyond those (semantic-sft conversations), from the records themselves.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from aig.manifests.dataset import Dataset
from aig.manifests.layout import CATALOG_FILE, MANIFEST_DIR, SHARDS_DIR, atomic_write
from aig.manifests.schema import SAMPLES

from .chunks import NOT_IN_TAR

DEFAULT_GROUP = "real"
SCHEMA_TYPES = {"string": "VARCHAR", "int32": "BIGINT", "int64": "BIGINT", "double": "DOUBLE"}
# DuckDB's JSON structure types -> datasets dtypes. NULL (never set) and JSON (mixed types) are left out.
FEATURE_TYPES = {"UBIGINT": "int64", "BIGINT": "int64", "DOUBLE": "float64", "VARCHAR": "string",
                 "BOOLEAN": "bool"}


def record_structure(provenance: dict | None, extras: dict | None = None) -> dict:
    """The JSON member's structure (DuckDB json_structure style): manifest columns, cls, provenance, extras."""
    out = {name: SCHEMA_TYPES[t] for name, t in SAMPLES if name not in NOT_IN_TAR and name != "provenance"}
    out["cls"] = "UBIGINT"
    if provenance:
        out["provenance"] = provenance
    for k, v in (extras or {}).items():
        out.setdefault(k, v)
    return out


def feature(name: str, structure) -> dict | None:
    """A datasets feature in the card's YAML form (`Features._to_yaml_list`), or None for untyped values."""
    inner = _inner(structure)
    if inner is None:
        return None
    return {"name": name, **inner}


def _inner(structure) -> dict | None:
    if isinstance(structure, dict):
        fields = [f for k, v in sorted(structure.items()) if (f := feature(k, v))]
        return {"struct": fields} if fields else None
    if isinstance(structure, list):
        elem = _inner(structure[0]) if structure else None
        if elem is None:
            return None
        return {"list": elem.get("dtype") or elem.get("struct") or elem}
    dtype = FEATURE_TYPES.get(structure)
    return {"dtype": dtype} if dtype else None


def group_features(formats: list[str], structure: dict) -> list[dict]:
    """A config's features: one image column per stored format, the JSON struct, the key and the tar URL."""
    return ([{"name": ext, "dtype": "image"} for ext in sorted(formats)] + [feature("json", structure)]
            + [{"name": "__key__", "dtype": "string"}, {"name": "__url__", "dtype": "string"}])


def card_metadata(groups: dict[str, dict], features: dict[str, list[dict]]) -> dict:
    """YAML front matter: `configs` (data_files per split) and `dataset_info` (features) per group."""
    default = DEFAULT_GROUP if DEFAULT_GROUP in groups else next(iter(sorted(groups)), None)
    configs, infos = [], []
    for group in sorted(groups):
        config = {"config_name": group}
        if group == default:
            config["default"] = True
        config["data_files"] = [{"split": split, "path": f"{SHARDS_DIR}/{group}/{split}/*.tar"}
                                for split in groups[group]]
        configs.append(config)
        infos.append({"config_name": group, "features": features[group]})
    return {"configs": configs, "dataset_info": infos, "tags": ["aig", "ai-generated-image-detection", "webdataset"]}


def card_text(name: str, info: dict, metadata: dict) -> str:
    import yaml

    lines = [f"# {name}", "",
             f"Built by `aig` (WebDataset shards, a Parquet manifest in `{MANIFEST_DIR}/`, a DuckDB catalog in "
             f"`{CATALOG_FILE}`). Each shard group is a config:", "",
             "| config | " + " | ".join(("train", "val", "test")) + " |", "|---|---|---|---|"]
    for group, splits in sorted(info.get("groups", {}).items()):
        lines.append(f"| {group} | " + " | ".join(str(splits.get(s, {}).get("num_samples", 0))
                                                 for s in ("train", "val", "test")) + " |")
    lines += ["", "```python", "from datasets import load_dataset",
              f"ds = load_dataset(\"path/to/{name}\", \"{DEFAULT_GROUP}\", split=\"train\")  "
              "# image column + `json` (label, cls 0 real / 1 fake, split, provenance, ...)", "```", "",
              "A field whose value is unknown is absent from a record's JSON (never null); `cls` is 0 for real, "
              "1 for fake.", ""]
    return "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(lines)


def _manifest_groups(root: Path) -> dict[str, tuple[list[str], dict]]:
    """group -> (stored formats, merged structure of its provenance JSON), from the samples table."""
    import duckdb

    files = Dataset(root).table_files("samples")
    if not files:
        return {}
    con = duckdb.connect()
    try:
        rows = con.execute(
            "select split_part(shard, '/', 2), list(distinct format), "
            "json_group_structure(coalesce(provenance, '{}')::json) "
            "from read_parquet(?, union_by_name=true) group by 1", [[str(f) for f in files]]).fetchall()
    finally:
        con.close()
    return {g: (sorted(f for f in fmts if f), json.loads(s) if s else {}) for g, fmts, s in rows}


def _records_structure(tars: list[Path], limit: int | None) -> dict:
    """Merged structure of the JSON members of local tars (the first `limit` of them, or all)."""
    import duckdb

    docs: list[str] = []
    for tar in tars:
        if not tar.is_file():
            continue  # object storage: only the manifest is mirrored locally
        with tarfile.open(tar) as tf:
            for m in tf:
                if m.name.endswith(".json"):
                    docs.append(tf.extractfile(m).read().decode())
                    if limit and len(docs) >= limit:
                        break
        if limit and len(docs) >= limit:
            break
    if not docs:
        return {}
    con = duckdb.connect()
    try:
        s = con.execute("select json_group_structure(j::json) from (select unnest(?) as j)", [docs]).fetchone()[0]
    finally:
        con.close()
    return json.loads(s) if s else {}


def write_card(root: Path, info: dict) -> Path:
    """(Re)write the dataset card from info.json's groups and the manifest."""
    known = set(record_structure({}))
    manifest = _manifest_groups(root)
    groups, features = {}, {}
    for group, splits in sorted(info.get("groups", {}).items()):
        groups[group] = [s for s in ("train", "val", "test") if s in splits]
        tars = [root / f for s in groups[group] for f in splits[s]["filenames"]]
        formats, provenance = manifest.get(group, ([], {}))
        sampled = _records_structure(tars, limit=64)
        if set(sampled) - known - {"provenance"}:  # extra fields: read them all, their types must be complete
            sampled = _records_structure(tars, limit=None)
        extras = {k: v for k, v in sampled.items() if k not in known}
        features[group] = group_features(formats or ["png"], record_structure(provenance, extras))
    path = Dataset(root).card_path
    atomic_write(path, card_text(root.resolve().name, info, card_metadata(groups, features)).encode())
    return path
