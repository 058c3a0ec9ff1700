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

from aig.manifests.errors import AigError
from aig.manifests.schema import read_parquet

from . import storage
from .config import LIST_FORMATS, DownloadConfig, InputConfig

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp", "gif")
PATH_COLUMNS = ("path", "image", "file", "filepath", "filename", "url")


class InputError(AigError, ValueError):
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


UNDECODABLE = ("undecodable_name: the name is not valid UTF-8 (shown with \\x escapes); rename it, "
               "e.g. with `convmv -f latin1 -t utf-8`")


def printable(name: str) -> str:
    """`name` as valid UTF-8 text: bytes of a file name that are not UTF-8 are shown as \\xNN."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        try:
            return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return name.encode("utf-8", "backslashreplace").decode("utf-8")


def _named_safely(item: "InputItem") -> "InputItem":
    """An input whose path is not valid UTF-8 cannot be recorded as is: it becomes a failure row."""
    name, file = printable(item.input_path), printable(item.file)
    if (name, file) == (item.input_path, item.file):
        return item
    return InputItem(name, file, caption=item.caption, group=item.group, origin=item.origin,
                     error=item.error and printable(item.error) or UNDECODABLE)


def embedded_list() -> Path:
    return Path(str(resources.files("aig.pipeline") / "assets" / "photos" / "photos.csv"))


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
                items.append(_named_safely(InputItem(str(p.resolve()), str(p.resolve()))))
            elif p.is_symlink():  # dangling or a loop: recorded, not silently skipped
                items.append(_named_safely(InputItem(str(p.absolute()), str(p.absolute()), error=_broken_link(p))))
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
    """The rows of a list file; raises ValueError (with what to do) when its content cannot be read."""
    fmt = fmt or list_format(name)
    if fmt.endswith(".gz"):
        try:
            data, fmt = gzip.decompress(data), fmt[:-3]
        except (OSError, EOFError) as e:
            raise ValueError(f"not a readable gzip file ({e})") from None
    if fmt == "parquet":
        import pyarrow as pa

        try:
            return read_parquet(pa.BufferReader(data)).to_pylist()
        except (pa.ArrowException, OSError) as e:
            raise ValueError(f"not a readable Parquet file ({e}); re-export the list") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is not part of the first column's name
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); save it as UTF-8, "
                         "e.g. `iconv -f latin1 -t utf-8 LIST > LIST.utf8`") from None
    if fmt in ("csv", "tsv"):
        csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # long captions are fine
        try:
            return list(csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ","))
        except csv.Error as e:
            raise ValueError(f"not a readable CSV file ({e})") from None
    try:
        if fmt == "json":  # an array of objects (img2dataset's json)
            rows = json.loads(text)
            return rows if isinstance(rows, list) else [rows]
        if fmt == "jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise ValueError(f"not readable {fmt} ({e})") from None
    lines = text.splitlines()
    return [{"path": line.strip()} for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _path_cell(value) -> str:
    """A path cell as text: bytes are a file name's bytes (decoded like the OS does); numbers are refused."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return os.fsdecode(value)
    if not isinstance(value, str):
        raise ValueError(f"its path column holds {type(value).__name__} values, not paths; store the paths as text")
    return value


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
    where_list = list_file if remote else str(Path(list_file).resolve())
    fmt = fmt or list_format(list_file)
    try:
        rows = _rows_from_list(list_file, storage.read_object(list_file) if remote else Path(list_file).read_bytes(), fmt)
    except ValueError as e:  # a damaged list is one failure row; the other inputs go on
        return [InputItem(where_list, where_list, origin=origin, error=f"unreadable_list: {e}")]
    if rows and not all(isinstance(r, dict) for r in rows):
        raise InputError(f"input list '{list_file}': every record must be an object with a path or url field")
    if fmt == "txt":  # one path or URL a line
        url_col = "path"
    column = None
    if rows:
        column = url_col or next((c for c in PATH_COLUMNS if c in rows[0]), None)
        if column is None or column not in rows[0]:
            named = f"no column '{column}' (--url-col)" if column else \
                f"no path column; name one of: {', '.join(PATH_COLUMNS)} or pass --url-col"
            raise InputError(f"input list '{list_file}' has {named} (columns found: {', '.join(map(repr, rows[0]))})")
    try:
        cells = [_path_cell(row.get(column)) for row in rows]
    except ValueError as e:
        return [InputItem(where_list, where_list, origin=origin, error=f"unreadable_list: {e}")]
    items = []
    for row, cell in zip(rows, cells):
        raw = cell.strip()
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
        items.append(_named_safely(InputItem(name, where, caption=caption, group=group, origin=origin, error=error)))
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
        if printable(real) != real:
            items.append(_named_safely(InputItem(real, real, origin="shards")))
            continue
        try:
            items.extend(_shard_items(real))
        except (tarfile.TarError, OSError) as e:
            items.append(InputItem(real, real, origin="shards", error=f"unreadable_shard: {e}"))
    return items


def _shard_items(shard: str) -> list[InputItem]:
    """One input per sample key (its first image member); a later image member of a key is a
    `duplicate_key` failure, named `SHARD#MEMBER@OFFSET` (the member header's offset in the tar)."""
    samples: dict[str, dict[str, tarfile.TarInfo]] = {}
    order: list[str] = []
    duplicates: list[InputItem] = []
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
                key, ext = _sample_key(printable(m.name))
                if not m.isfile():  # symlink, hard link, device...: never followed nor read
                    ext = f"{ext} ({'link' if m.issym() or m.islnk() else 'special file'})"
                if key not in samples:
                    samples[key] = {}
                    order.append(key)
                first = next((samples[key][e] for e in IMAGE_EXTENSIONS if e in samples[key]), None)
                if ext in IMAGE_EXTENSIONS and first is not None:
                    duplicates.append(InputItem(
                        f"{shard}#{printable(m.name)}@{m.offset}", shard, origin="shards",
                        error=f"duplicate_key: sample '{key}' already has the image member '{printable(first.name)}' "
                              f"(offset {first.offset}); only the first image of a key is ingested"))
                    continue
                samples[key].setdefault(ext, m)
                if ext in ("txt", "caption") and m.size < 100_000 and m.offset_data + m.size <= shard_size:
                    captions.setdefault(key, tf.extractfile(m).read().decode("utf-8", "replace").strip())
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
        items.append(InputItem(f"{shard}#{printable(m.name)}", shard, offset=m.offset_data, size=m.size,
                               caption=captions.get(key) or None, origin="shards",
                               error="truncated: member data runs past the end of the shard" if short else None))
    items += duplicates
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


def fetch_input(item: InputItem, download: DownloadConfig | None = None) -> bytes:
    """An input's bytes; http(s) URLs are downloaded (aig.pipeline.fetch), raising FetchError with a reason."""
    from .fetch import fetch, is_http

    if is_http(item.file) and item.offset < 0:
        return fetch(item.file, download or DownloadConfig())
    if storage.is_url(item.file):
        return storage.read_object(item.file, item.offset, item.size)
    if item.offset >= 0:
        with open(item.file, "rb") as f:
            f.seek(item.offset)
            data = f.read(item.size)
        if len(data) != item.size:
            raise OSError(f"short read: {len(data)} of {item.size} bytes at offset {item.offset}")
        return data
    with open(item.file, "rb") as f:
        return f.read()
