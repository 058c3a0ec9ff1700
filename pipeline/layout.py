"""Where everything lives inside a dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

from aig.manifests.schema import CATALOG_FILE, INFO_FILE, MANIFEST_DIR, SHARDS_DIR, table_dir

LOCK_FILE = ".aig.lock"
INDEX_DIR = "index"
CARD_FILE = "README.md"  # the dataset card (Hugging Face datasets reads its configs)
# Everything aig writes at a dataset's root (--overwrite deletes these and nothing else).
OWN_NAMES = (SHARDS_DIR, INDEX_DIR, MANIFEST_DIR, CATALOG_FILE, CATALOG_FILE + ".wal", INFO_FILE, CARD_FILE, LOCK_FILE,
             "report.html", "eval")


def chunk_name(group: str, chunk: int) -> str:
    return f"{group}-{chunk:06d}"


def shard_path(root: Path, group: str, split: str, chunk: int, part: int) -> Path:
    return root / SHARDS_DIR / group / split / f"{chunk_name(group, chunk)}-{part:02d}.tar"


def index_rel(tar_rel: str) -> str:
    """A shard's member index, in index/ (mirroring shards/, where folder loaders such as HF datasets
    do not mistake it for data): shards/G/S/X.tar -> index/G/S/X.index.parquet."""
    rel = tar_rel[len(SHARDS_DIR) + 1:] if tar_rel.startswith(SHARDS_DIR + "/") else tar_rel
    return f"{INDEX_DIR}/{rel[: -len('.tar')]}.index.parquet"


def index_path(root: Path, tar_path: Path) -> Path:
    return root / index_rel(tar_path.relative_to(root).as_posix())


def table_file(root: Path, table: str, name: str) -> Path:
    return table_dir(root, table) / f"{name}.parquet"


def done_path(root: Path, chunk: str) -> Path:
    return root / MANIFEST_DIR / "done" / f"{chunk}.json"


def plan_path(root: Path, run_id: str) -> Path:
    return root / MANIFEST_DIR / "plans" / f"{run_id}.parquet"


def done_markers(root: Path) -> dict[str, dict]:
    folder = root / MANIFEST_DIR / "done"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def is_dataset(root: Path) -> bool:
    return (root / MANIFEST_DIR).is_dir() or (root / INFO_FILE).is_file() or (root / CATALOG_FILE).is_file()


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("**/.*.tmp-*") if p.is_file())


def is_own(name: str) -> bool:
    """True for a root entry aig wrote: one of OWN_NAMES, or a temporary file of the catalog's."""
    return name in OWN_NAMES or name.startswith(f".{CATALOG_FILE}.tmp-")


def foreign_entries(root: Path) -> list[Path]:
    """Entries at the root of `root` that aig did not write (sorted)."""
    return sorted(p for p in root.iterdir() if not is_own(p.name)) if root.is_dir() else []
