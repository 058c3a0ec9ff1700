"""Enumerate inputs (folders, path lists, WebDataset shards, the embedded photos) as InputItems."""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import os
import sys
import posixpath
import tarfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import storage
from .config import LIST_FORMATS, DownloadConfig, InputConfig

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif")
PATH_COLUMNS = ("path", "image", "file", "filepath", "filename", "url")


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
        return _warn_if_empty(folder, [InputItem(u, u) for u in storage.find_files(folder)])
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
    return _warn_if_empty(folder, sorted(items, key=lambda i: i.input_path))


def _warn_if_empty(folder: str, items: list[InputItem]) -> list[InputItem]:
    if not items:
        print(f"[aig] warning: input folder '{folder}' holds no files: nothing to ingest from it", file=sys.stderr)
    return items


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


def list_format(name: str) -> str:
    """A list's format from its extension (img2dataset's input_format names); anything else is txt."""
    base = posixpath.basename(name).lower()
    return next((f for f in sorted(LIST_FORMATS, key=len, reverse=True) if base.endswith("." + f)), "txt")


def _rows_from_list(name: str, data: bytes, fmt: str | None = None) -> list[dict]:
    fmt = fmt or list_format(name)
    if fmt.endswith(".gz"):
        data, fmt = gzip.decompress(data), fmt[:-3]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pylist()
    if fmt in ("csv", "tsv"):
        with io.TextIOWrapper(io.BytesIO(data), newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t" if fmt == "tsv" else ","))
    text = data.decode("utf-8")
    if fmt == "json":  # an array of objects (img2dataset's json)
        rows = json.loads(text)
        return rows if isinstance(rows, list) else [rows]
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    lines = text.splitlines()
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


def from_list(list_file: str, origin: str = "list", fmt: str | None = None, url_col: str | None = None,
              caption_col: str = "caption") -> list[InputItem]:
    remote = storage.is_url(list_file)
    if not (storage.isfile(list_file) if remote else Path(list_file).is_file()):
        raise InputError(f"input list '{list_file}' does not exist")
    data = storage.read_bytes(list_file) if remote else Path(list_file).read_bytes()
    try:
        rows = _rows_from_list(list_file, data, fmt)
    except (ValueError, OSError) as e:  # bad JSON, CSV, gzip or Parquet
        raise InputError(f"input list '{list_file}' cannot be read as {fmt or list_format(list_file)}: "
                         f"{type(e).__name__}: {e}") from None
    if rows and not all(isinstance(r, dict) for r in rows):
        raise InputError(f"input list '{list_file}': every record must be an object with a path or url field")
    if (fmt or list_format(list_file)) == "txt":  # one path or URL a line
        url_col = "path"
    if rows:
        column = url_col or next((c for c in PATH_COLUMNS if c in rows[0]), None)
        if column is None or column not in rows[0]:
            named = f"no column '{column}' (--url-col)" if column else \
                f"no path column; name one of: {', '.join(PATH_COLUMNS)} or pass --url-col"
            raise InputError(f"input list '{list_file}' has {named} (columns found: {', '.join(rows[0])})")
    items = []
    for row in rows:
        raw = str(row.get(column) or "").strip()
        url = _remote_entry(list_file, raw) if raw else None
        broken = False
        if url is None:
            listed = Path(raw) if Path(raw).is_absolute() else Path(list_file).parent / raw
            broken = bool(raw) and listed.is_symlink() and not listed.is_file()  # dangling, or a loop
            p = listed.absolute() if broken else (_resolve(listed) or listed.absolute())
        caption = (row.get(caption_col) or None) if isinstance(row.get(caption_col), str) else None
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
        items += from_list(list_file, fmt=cfg.list_format, url_col=cfg.url_col, caption_col=cfg.caption_col)
    for spec in cfg.shards:
        items += from_shards(spec)
    seen: set[str] = set()
    unique = []
    for item in items:
        if item.input_path not in seen:
            seen.add(item.input_path)
            unique.append(item)
    return unique


def read_bytes(item: InputItem, download: DownloadConfig | None = None) -> bytes:
    """An input's bytes; http(s) URLs are downloaded (pipeline.fetch), raising FetchError with a reason."""
    from .fetch import fetch, is_http

    if is_http(item.file) and item.offset < 0:
        return fetch(item.file, download or DownloadConfig())
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
