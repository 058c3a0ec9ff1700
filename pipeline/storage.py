"""Datasets and inputs on object storage: any fsspec URL (`s3://bucket/prefix`, `gs://…`, `memory://…`).

How the pipeline's guarantees carry over (docs/scaling.md, "Object storage"):
- Workers build each chunk in a local staging folder with the same code as for a local dataset, then
  upload its files in order: tars, their indexes, the samples/failures Parquet, the done marker last.
  An object store shows an object only once its upload has completed, so a tar is never visible
  half-written under its final name, and a chunk counts as done only when everything it lists is there.
- The driver plans, resumes and publishes on a local mirror of the dataset's manifest (manifest/,
  info.json, catalog.duckdb): `pull` brings it up to date with the remote (what workers uploaded),
  `push` uploads what the driver wrote itself, runs last (a run row never names a missing plan).
- `aig sql`/`info`/`verify` pull the same files into a read-only mirror and query the catalog there:
  DuckDB's own S3 reader (httpfs) is an extension downloaded at run time, which offline machines lack.

Credentials and endpoints come from the usual places of the fsspec backend (for s3fs: AWS_* variables,
~/.aws, AWS_ENDPOINT_URL for S3-compatible servers).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aig.manifests.errors import AigError
from aig.manifests.layout import INDEX_DIR, LOCK_FILE, MANIFEST_DIR, SHARDS_DIR, DatasetLayout

MIRROR_STATE = ".aig-mirror.json"
MIRROR_LOCK = ".aig-mirror.lock"


class StorageError(AigError, RuntimeError):
    """Object storage cannot be read or written; the message names the URL and what to check."""


def is_url(location) -> bool:
    return "://" in str(location)


def filesystem(url: str):
    """(fsspec filesystem, path without protocol) for a URL."""
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise StorageError(f"cannot open '{url}': {e} (s3:// needs `pip install s3fs`)") from None


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def _hint(url: str, e: BaseException) -> StorageError:
    return StorageError(f"cannot access '{url}': {type(e).__name__}: {e}. Check the URL, that the bucket exists, "
                        "and the credentials/endpoint (for S3: AWS_* variables or ~/.aws, AWS_ENDPOINT_URL)")


# -- inputs -----------------------------------------------------------------------------------------

def find_files(url: str) -> list[str]:
    """Every file under a URL prefix, as full URLs, sorted."""
    fs, path = filesystem(url)
    try:
        return sorted(fs.unstrip_protocol(p) for p in fs.find(path))
    except OSError as e:
        raise _hint(url, e) from None


def glob(pattern: str) -> list[str]:
    fs, path = filesystem(pattern)
    try:
        found = fs.glob(path, detail=True)
    except OSError as e:
        raise _hint(pattern, e) from None
    return sorted(fs.unstrip_protocol(p) for p, e in found.items() if e.get("type", "file") == "file")


def isdir(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.isdir(path)


def isfile(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.isfile(path)


def size(url: str) -> int:
    fs, path = filesystem(url)
    return fs.size(path)


def open_binary(url: str):
    fs, path = filesystem(url)
    return fs.open(path, "rb")


def read_object(url: str, offset: int = -1, size: int = -1) -> bytes:
    """A whole object, or `size` bytes at `offset` of it (a tar member)."""
    fs, path = filesystem(url)
    if offset < 0:
        return fs.cat_file(path)
    data = fs.cat_file(path, start=offset, end=offset + size)
    if len(data) != size:
        raise OSError(f"short read: {len(data)} of {size} bytes at offset {offset} of {url}")
    return data


def read_range(root: str | Path, rel: str, offset: int, size: int) -> bytes:
    """`size` bytes at `offset` of a dataset file (local folder or URL)."""
    if is_url(root):
        return read_object(join(str(root), rel), offset, size)
    with open(Path(root) / rel, "rb") as f:
        f.seek(offset)
        return f.read(size)


# -- chunk outputs (workers) ------------------------------------------------------------------------

def _upload_rank(rel: str) -> tuple[int, str]:
    if rel.endswith(".tar"):
        rank = 0
    elif rel.endswith(".index.parquet"):
        rank = 1
    elif DatasetLayout.is_done_rel(rel):
        rank = 3  # the done marker: last
    else:
        rank = 2
    return rank, rel


def upload_order(rels: list[str]) -> list[str]:
    """Tars, then indexes, then manifest tables, then done markers."""
    return sorted(rels, key=_upload_rank)


@contextmanager
def chunk_output(root: str | Path) -> Iterator[Path]:
    """The folder a chunk is written into. For a URL: a local staging folder, uploaded in order on success."""
    if not is_url(root):
        yield Path(root)
        return
    with tempfile.TemporaryDirectory(prefix="aig-stage-") as tmp:
        yield Path(tmp)
        local = Path(tmp)
        rels = [p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()]
        fs, base = filesystem(str(root))
        for rel in upload_order(rels):
            try:
                fs.put_file(str(local / rel), f"{base.rstrip('/')}/{rel}")
            except OSError as e:
                raise _hint(str(root), e) from None


# -- the driver's and readers' local mirror of a remote dataset -------------------------------------

def cache_root() -> Path:
    if os.environ.get("AIG_CACHE_DIR"):
        return Path(os.environ["AIG_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aig"


def _in_pull_scope(rel: str) -> bool:
    return DatasetLayout.is_manifest_rel(rel) or "/" not in rel


def _signature(entry: dict) -> str:
    tag = entry.get("ETag") or entry.get("etag") or entry.get("LastModified") or entry.get("mtime") or ""
    return f"{entry.get('size')}:{tag}"


def _stat(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_mtime_ns, st.st_size]


class LocalDataset:
    """A dataset in a local folder: the driver works on it directly."""

    def __init__(self, location: str | Path):
        self.url = str(location)
        self.local = Path(location)

    def pull(self) -> None:
        pass

    def push(self) -> None:
        pass


class Mirror:
    """A remote dataset's manifest files in a local folder (`purpose`: build, or view for readers)."""

    def __init__(self, url: str, purpose: str = "build"):
        self.url = url.rstrip("/")
        self.fs, self.base = filesystem(self.url)
        self.base = self.base.rstrip("/")
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.local = cache_root() / "remote" / digest / purpose
        self.local.mkdir(parents=True, exist_ok=True)

    # state: what was last synced, remote signatures and the local stat of each file
    def _load_state(self) -> dict:
        p = self.local / MIRROR_STATE
        return json.loads(p.read_text()) if p.is_file() else {"remote": {}, "local": {}}

    def _save_state(self, state: dict) -> None:
        p = self.local / MIRROR_STATE
        tmp = p.with_name(p.name + f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(state, sort_keys=True))
        os.replace(tmp, p)

    def _rel(self, path: str) -> str:
        return path[len(self.base) + 1:]

    def listing(self, under: str = "") -> dict[str, dict]:
        """rel path -> fsspec entry for every remote file under `under` (fresh: caches dropped)."""
        self.fs.invalidate_cache()
        prefix = f"{self.base}/{under}".rstrip("/")
        try:
            found = self.fs.find(prefix, detail=True)
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise _hint(self.url, e) from None
        return {self._rel(p): e for p, e in found.items() if e.get("type", "file") == "file"}

    def _remote_scope(self) -> dict[str, dict]:
        out = {rel: e for rel, e in self.listing(MANIFEST_DIR).items()}
        self.fs.invalidate_cache()
        try:
            top = self.fs.ls(self.base, detail=True) if self.fs.exists(self.base) else []
        except OSError as e:
            raise _hint(self.url, e) from None
        out.update({self._rel(e["name"].rstrip("/")): e for e in top if e.get("type") == "file"})
        return out

    def is_dataset(self) -> bool:
        return any(DatasetLayout.is_dataset_rel(rel) for rel in self._remote_scope())

    def remote_state(self) -> str:
        """'empty', 'dataset' or 'other' (objects there, none of them a dataset's)."""
        self.fs.invalidate_cache()
        try:
            has_any = self.fs.exists(self.base) and bool(self.fs.ls(self.base))
        except OSError as e:
            raise _hint(self.url, e) from None
        return "dataset" if self.is_dataset() else ("other" if has_any else "empty")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.local / MIRROR_LOCK, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def pull(self) -> None:
        """Make the mirror's manifest/, info.json and catalog equal to the remote's."""
        with self._locked():
            state = self._load_state()
            remote = self._remote_scope()
            want = []
            for rel, entry in remote.items():
                p = self.local / rel
                sig = _signature(entry)
                if not p.is_file() or state["remote"].get(rel) != sig or state["local"].get(rel) != _stat(p):
                    want.append(rel)
                state["remote"][rel] = sig
            if want:
                tmps = [self.local / f"{rel}.pull-{os.getpid()}" for rel in want]
                for t in tmps:
                    t.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self.fs.get([f"{self.base}/{rel}" for rel in want], [str(t) for t in tmps])
                except OSError as e:
                    raise _hint(self.url, e) from None
                for rel, t in zip(want, tmps):
                    os.replace(t, self.local / rel)
            for p in list(self.local.rglob("*")):
                rel = p.relative_to(self.local).as_posix()
                if p.is_file() and _in_pull_scope(rel) and rel not in remote and not rel.startswith(".aig"):
                    p.unlink()  # gone remotely (e.g. rebuilt with --overwrite elsewhere)
                    state["remote"].pop(rel, None)
                    state["local"].pop(rel, None)
            state["local"].update({rel: _stat(self.local / rel) for rel in remote})
            self._save_state(state)

    def push(self) -> None:
        """Upload the files the driver wrote or changed in the mirror; run rows last."""
        with self._locked():
            state = self._load_state()
            changed = []
            for p in self.local.rglob("*"):
                rel = p.relative_to(self.local).as_posix()
                if p.is_file() and not p.name.startswith(".") and state["local"].get(rel) != _stat(p):
                    changed.append(rel)
            for rel in sorted(changed, key=lambda r: (DatasetLayout.is_table_rel(r, "runs"), r)):
                remote = f"{self.base}/{rel}"
                try:
                    self.fs.put_file(str(self.local / rel), remote)
                    state["remote"][rel] = _signature(self.fs.info(remote))
                except OSError as e:
                    raise _hint(self.url, e) from None
                state["local"][rel] = _stat(self.local / rel)
            self._save_state(state)

    def clear(self) -> None:
        """Delete the remote dataset and the mirror (the caller checked it is a dataset)."""
        try:
            if self.fs.exists(self.base):
                self.fs.rm(self.base, recursive=True)
        except OSError as e:
            raise _hint(self.url, e) from None
        self.fs.invalidate_cache()
        for p in sorted(self.local.rglob("*"), reverse=True):
            if p.name not in (MIRROR_LOCK,) and not p.name.startswith(LOCK_FILE):
                p.rmdir() if p.is_dir() else p.unlink()


def open_output(location: str | Path) -> LocalDataset | Mirror:
    return Mirror(str(location), "build") if is_url(location) else LocalDataset(location)


def local_view(location: str | Path) -> Path:
    """A folder with the dataset's manifest and catalog: the folder itself, or a fresh read-only mirror."""
    if not is_url(location):
        return Path(location)
    mirror = Mirror(str(location), "view")
    mirror.pull()
    if not DatasetLayout(mirror.local).manifest_dir.is_dir():
        raise StorageError(f"'{location}' holds no aig dataset (no {MANIFEST_DIR}/ there); "
                           f"build one with `aig build-data --output {location}`")
    return mirror.local


# -- reading a dataset's shards (verify, info) ------------------------------------------------------

class LocalFiles:
    """A local dataset's shard files, by path relative to its root."""

    def __init__(self, root: Path):
        self.root = root

    def tars(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in DatasetLayout(self.root).shards_dir.glob("**/*.tar"))

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def size(self, rel: str) -> int:
        return (self.root / rel).stat().st_size

    def open(self, rel: str):
        return open(self.root / rel, "rb")

    def temp_files(self) -> list[str]:
        return [p.relative_to(self.root).as_posix() for p in DatasetLayout(self.root).temp_files()]

    def total_bytes(self) -> tuple[int, int]:
        files = [p for p in self.root.rglob("*") if p.is_file()]
        return sum(p.stat().st_size for p in files), sum(p.stat().st_size for p in files if p.suffix == ".tar")


class RemoteFiles:
    """A remote dataset's shard files (one listing of shards/, then reads by range)."""

    def __init__(self, url: str):
        self.mirror = Mirror(url, "view")
        found = {**self.mirror.listing(SHARDS_DIR), **self.mirror.listing(INDEX_DIR)}  # tars and their indexes
        self._shards = {rel: e["size"] for rel, e in found.items()}

    def tars(self) -> list[str]:
        return sorted(r for r in self._shards if r.endswith(".tar"))

    def exists(self, rel: str) -> bool:
        return rel in self._shards

    def size(self, rel: str) -> int:
        return self._shards[rel]

    def open(self, rel: str):
        return self.mirror.fs.open(f"{self.mirror.base}/{rel}", "rb")

    def temp_files(self) -> list[str]:
        return []  # uploads are all-or-nothing: no temporary objects

    def total_bytes(self) -> tuple[int, int]:
        sizes = {rel: e["size"] for rel, e in self.mirror.listing().items()}
        return sum(sizes.values()), sum(s for r, s in sizes.items() if r.endswith(".tar"))


def dataset_files(location: str | Path, root: Path) -> LocalFiles | RemoteFiles:
    return RemoteFiles(str(location)) if is_url(location) else LocalFiles(root)
