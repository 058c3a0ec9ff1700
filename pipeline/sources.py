"""Enumerate inputs (folders, path lists, WebDataset shards, the embedded photos) as InputItems."""

from __future__ import annotations

import csv
import glob
import io
import os
import posixpath
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import storage
from .config import InputConfig

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif")
PATH_COLUMNS = ("path", "image", "file", "filepath", "filename")


class InputError(ValueError):
    """An input specification cannot be used; the message names it and what to do."""


@dataclass(frozen=True)
class InputItem:
    """One input. `input_path` is its identity: a file path, or `shard.tar#member` for shard members."""

    input_path: str
    file: str  # file to read bytes from
    offset: int = -1  # >= 0: read `size` bytes at `offset` of `file` (a tar member)
    size: int = -1
    caption: str | None = None
    group: str | None = None
    origin: str = "folder"  # folder | list | shards | embedded
    error: str | None = None  # set when the input cannot be read at all (reason: detail)


def embedded_list() -> Path:
    return Path(str(resources.files("pipeline") / "assets" / "photos" / "photos.csv"))


def from_folder(folder: str) -> list[InputItem]:
    if storage.is_url(folder):
        if not storage.isdir(folder):
            raise InputError(f"input folder '{folder}' does not exist or is not a folder")
        return [InputItem(u, u) for u in storage.find_files(folder)]
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"input folder '{folder}' does not exist or is not a folder")
    items = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath, name)
            if p.is_file():  # a symlink to a file counts as its target (listed once with it)
                items.append(InputItem(str(p.resolve()), str(p.resolve())))
            elif p.is_symlink():  # dangling or a loop: recorded, not silently skipped
                items.append(InputItem(str(p.absolute()), str(p.absolute()), error=_broken_link(p)))
    return sorted(items, key=lambda i: i.input_path)


def _broken_link(p: Path) -> str:
    try:
        target = os.readlink(p)
    except OSError as e:
        target = f"? ({e.strerror})"
    return f"missing: {p} is a broken symlink (to {target}: dangling or a loop)"


def _resolve(p: Path) -> Path | None:
    """The real path, or None for a symlink loop (Python 3.11 raises RuntimeError, later ones OSError)."""
    try:
        return p.resolve()
    except (RuntimeError, OSError):
        return None


def _rows_from_list(name: str, data: bytes) -> list[dict]:
    suffix = posixpath.splitext(name)[1].lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pylist()
    if suffix in (".csv", ".tsv"):
        with io.TextIOWrapper(io.BytesIO(data), newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
    lines = data.decode("utf-8").splitlines()
    return [{"path": line.strip()} for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _remote_entry(list_file: str, raw: str) -> str | None:
    """A list entry naming an object: a URL, or a relative path in a list that is itself at a URL."""
    if storage.is_url(raw):
        return raw
    if storage.is_url(list_file) and not raw.startswith("/"):
        base, _, _ = list_file.rpartition("/")
        scheme, _, rest = base.partition("://")
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, raw))}"
    return None


def from_list(list_file: str, origin: str = "list") -> list[InputItem]:
    remote = storage.is_url(list_file)
    if not (storage.isfile(list_file) if remote else Path(list_file).is_file()):
        raise InputError(f"input list '{list_file}' does not exist")
    rows = _rows_from_list(list_file, storage.read_bytes(list_file) if remote else Path(list_file).read_bytes())
    if rows:
        column = next((c for c in PATH_COLUMNS if c in rows[0]), None)
        if column is None:
            raise InputError(
                f"input list '{list_file}' has no path column; name one of: {', '.join(PATH_COLUMNS)} "
                f"(columns found: {', '.join(rows[0])})"
            )
    items = []
    for row in rows:
        raw = str(row[column] or "").strip()
        url = _remote_entry(list_file, raw) if raw else None
        broken = False
        if url is None:
            listed = Path(raw) if Path(raw).is_absolute() else Path(list_file).parent / raw
            broken = bool(raw) and listed.is_symlink() and not listed.is_file()  # dangling, or a loop
            p = listed.absolute() if broken else (_resolve(listed) or listed.absolute())
        caption = (row.get("caption") or None) if isinstance(row.get("caption"), str) else None
        group = str(row["group"]) if row.get("group") not in (None, "") else None
        error = None
        if not raw:
            error = "missing: empty path in list"
        elif url is not None:
            pass  # an object that is missing fails when planning reads it (reason: missing)
        elif broken:
            error = _broken_link(listed)
        elif not p.is_file():
            error = f"missing: no such file {p}"
        where = url or str(p)
        name = f"embedded:{raw}" if origin == "embedded" else where  # embedded inputs: same id on every machine
        items.append(InputItem(name, where, caption=caption, group=group, origin=origin, error=error))
    return items


def _expand_shards(spec: str) -> list[str]:
    import braceexpand

    paths: list[str] = []
    for pattern in braceexpand.braceexpand(spec):
        if storage.is_url(pattern):
            if storage.isdir(pattern):
                paths.extend(u for u in storage.find_files(pattern) if u.endswith(".tar"))
            else:
                paths.extend(storage.glob(pattern) if any(ch in pattern for ch in "*?[") else [pattern])
        elif os.path.isdir(pattern):
            paths.extend(sorted(glob.glob(os.path.join(pattern, "**", "*.tar"), recursive=True)))
        elif any(ch in pattern for ch in "*?["):
            paths.extend(sorted(glob.glob(pattern, recursive=True)))
        else:
            paths.append(pattern)
    if not paths:
        raise InputError(f"no shards match '{spec}'; give tar paths, a folder of tars, a glob or a brace pattern")
    return paths


def _sample_key(name: str) -> tuple[str, str]:
    """WebDataset convention: key is the member path up to the first dot of its basename."""
    directory, base = os.path.split(name)
    stem, _, ext = base.partition(".")
    return os.path.join(directory, stem), ext.lower()


def from_shards(spec: str) -> list[InputItem]:
    items: list[InputItem] = []
    for shard in _expand_shards(spec):
        real = shard if storage.is_url(shard) else str(Path(shard).resolve())
        if not (storage.isfile(real) if storage.is_url(real) else os.path.isfile(real)):
            raise InputError(f"shard '{shard}' does not exist")
        try:
            items.extend(_shard_items(real))
        except (tarfile.TarError, OSError) as e:
            items.append(InputItem(real, real, origin="shards", error=f"unreadable_shard: {e}"))
    return items


def _shard_items(shard: str) -> list[InputItem]:
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    order: list[str] = []
    remote = storage.is_url(shard)
    shard_size = storage.size(shard) if remote else os.path.getsize(shard)
    broken: str | None = None
    with (storage.open_binary(shard) if remote else open(shard, "rb")) as f, \
            tarfile.open(fileobj=f, mode="r:") as tf:
        captions: dict[str, str] = {}
        try:
            for m in tf:
                if m.isdir():
                    continue
                key, ext = _sample_key(m.name)
                if not m.isfile():  # symlink, hard link, device...: never followed nor read
                    ext = f"{ext} ({'link' if m.issym() or m.islnk() else 'special file'})"
                if key not in samples:
                    samples[key] = {}
                    order.append(key)
                samples[key][ext] = m
                if ext in ("txt", "caption") and m.size < 100_000 and m.offset_data + m.size <= shard_size:
                    captions[key] = tf.extractfile(m).read().decode("utf-8", "replace").strip()
        except tarfile.TarError as e:  # cut short or damaged: keep the members read so far
            broken = f"unreadable_shard: {e} after {len(order)} samples"
    items = []
    for key in order:
        members = samples[key]
        image_ext = next((e for e in IMAGE_EXTENSIONS if e in members), None)
        if image_ext is None:
            items.append(InputItem(f"{shard}#{key}", shard, origin="shards",
                                   error=f"no_image_member: sample has only {', '.join(sorted(members))}"))
            continue
        m = members[image_ext]
        short = m.offset_data + m.size > shard_size
        items.append(InputItem(f"{shard}#{m.name}", shard, offset=m.offset_data, size=m.size,
                               caption=captions.get(key) or None, origin="shards",
                               error="truncated: member data runs past the end of the shard" if short else None))
    if broken:
        items.append(InputItem(f"{shard}#(end)", shard, origin="shards", error=broken))
    return items


def enumerate_inputs(cfg: InputConfig) -> list[InputItem]:
    """All inputs in a deterministic order; an input path given twice is kept once."""
    items: list[InputItem] = []
    if cfg.embedded:
        items += from_list(str(embedded_list()), origin="embedded")
    for folder in cfg.folders:
        items += from_folder(folder)
    for list_file in cfg.lists:
        items += from_list(list_file)
    for spec in cfg.shards:
        items += from_shards(spec)
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.input_path not in seen:
            seen.add(item.input_path)
            unique.append(item)
    return unique


def read_bytes(item: InputItem) -> bytes:
    if storage.is_url(item.file):
        return storage.read_bytes(item.file, item.offset, item.size)
    if item.offset >= 0:
        with open(item.file, "rb") as f:
            f.seek(item.offset)
            data = f.read(item.size)
        if len(data) != item.size:
            raise OSError(f"short read: {len(data)} of {item.size} bytes at offset {item.offset}")
        return data
    with open(item.file, "rb") as f:
        return f.read()
