"""External benchmarks: labelled image folders or a CSV/Parquet list, as rows (path, label, generator, benchmark).

Folder layouts (label folder names are case-insensitive, at any depth; the folders between the root and
the label folder name the subset/generator, split names like `test` dropped):
  Chameleon   test/0_real, test/1_fake
  WildRF      test/reddit/real, test/reddit/fake, ...
  GenImage    <generator>/val/nature, <generator>/val/ai
  AIGI-Now    <generator>/0_real, <generator>/1_fake
A list file has columns path, label (real/fake or 0/1) and optionally generator and subset (semantic/pixel); relative paths are
resolved against the list's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aig.manifests.errors import AigError

REAL_DIRS = {"0_real", "real", "nature", "0-real", "reals"}
FAKE_DIRS = {"1_fake", "fake", "ai", "1-fake", "fakes"}
SPLIT_DIRS = {"test", "val", "train", "eval", "validation"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif"}
LIST_EXTS = {".csv", ".tsv", ".parquet"}


class BenchmarkError(AigError, ValueError):
    """A benchmark path or list cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class Item:
    path: str
    label: int  # 1 fake, 0 real
    generator: str
    benchmark: str
    subset: str | None = None  # semantic | pixel, when a list says so (AIGI-Now labels its subsets)


def parse_label(value) -> int:
    text = str(value).strip().lower()
    if text in ("1", "fake", "1_fake", "ai", "true"):
        return 1
    if text in ("0", "real", "0_real", "nature", "false"):
        return 0
    raise BenchmarkError(f"label {value!r} is neither real/fake nor 0/1")


def label_from_parts(parts: tuple[str, ...]) -> tuple[int, str] | None:
    """(label, generator) from the folders between root and file, or None if no folder names a label."""
    for i in range(len(parts) - 1, -1, -1):
        name = parts[i].lower()
        if name in REAL_DIRS or name in FAKE_DIRS:
            subset = [p for p in parts[:i] if p.lower() not in SPLIT_DIRS]
            return (1 if name in FAKE_DIRS else 0), "/".join(subset) or "all"
    return None


def scan_folder(root: Path, name: str | None = None) -> tuple[list[Item], list[str]]:
    """Labelled images under root, plus the image files no folder labels (reported, not scored)."""
    bench = name or root.name
    items, unlabelled = [], []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTS or any(s.startswith(".") for s in p.parts):
            continue
        found = label_from_parts(p.relative_to(root).parts[:-1])
        if found is None:
            unlabelled.append(str(p))
        else:
            items.append(Item(str(p), found[0], found[1], bench))
    if not items:
        raise BenchmarkError(
            f"'{root}' holds no labelled images: put them under folders named 0_real/1_fake, real/fake or "
            f"nature/ai (any depth, any case), or pass a CSV/Parquet with columns path,label[,generator]")
    return items, unlabelled


def read_list(path: Path, name: str | None = None) -> list[Item]:
    import pandas as pd

    bench = name or path.stem
    try:
        df = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(
            path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str)
    except Exception as e:
        raise BenchmarkError(f"cannot read benchmark list '{path}': {e}") from None
    cols = {c.lower().strip(): c for c in df.columns}
    if "path" not in cols or "label" not in cols:
        raise BenchmarkError(f"benchmark list '{path}' needs columns path and label (has {', '.join(map(str, df.columns))})")
    items = []
    for i, row in enumerate(df.to_dict("records")):
        p = Path(str(row[cols["path"]]))
        p = p if p.is_absolute() else path.parent / p
        try:
            label = parse_label(row[cols["label"]])
        except BenchmarkError as e:
            raise BenchmarkError(f"{path}, row {i + 2}: {e}") from None
        gen = row.get(cols["generator"]) if "generator" in cols else None
        sub = row.get(cols["subset"]) if "subset" in cols else None
        sub = str(sub).strip().lower() if sub is not None and str(sub) not in ("nan", "") else None
        items.append(Item(str(p), label, str(gen) if gen is not None and str(gen) != "nan" else "all", bench, sub))
    if not items:
        raise BenchmarkError(f"benchmark list '{path}' has no rows")
    return items


def load_benchmark(spec: str) -> tuple[list[Item], list[str]]:
    """`PATH` or `NAME=PATH` (a folder or a list file) -> (items, unlabelled files)."""
    name, _, rest = spec.partition("=") if "=" in spec and not Path(spec).exists() else (None, "", spec)
    path = Path(rest)
    if not path.exists():
        raise BenchmarkError(f"benchmark '{path}' does not exist")
    if path.is_file():
        if path.suffix.lower() not in LIST_EXTS:
            raise BenchmarkError(f"benchmark '{path}' is a file but not a .csv/.tsv/.parquet list")
        return read_list(path, name), []
    return scan_folder(path, name)
