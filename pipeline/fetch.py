"""Download one http(s) input: a timeout, retries with backoff on 429/5xx, a user agent naming aig, a size
bound, and the X-Robots-Tag opt-out (img2dataset's rule: `noai`/`noimageai`/... for every agent or for aig)."""

from __future__ import annotations

import threading

from .config import DownloadConfig
from .decode import TOO_LARGE, Rejected

UA_TOKEN = "aig"
RETRY_STATUSES = (429, 500, 502, 503, 504)
_local = threading.local()


class FetchError(Rejected):
    """A URL gave no usable bytes; `reason` is opted_out, http_error, download_error or too_large."""


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def opted_out(header_values: list[str], directives: list[str], token: str = UA_TOKEN) -> str | None:
    """The X-Robots-Tag value that opts this agent out (`noai`, `aig: noimageai`, ...), or None."""
    wanted = {d.strip().lower() for d in directives}
    for value in header_values:
        agent, sep, rest = value.partition(":")
        target = agent.strip().lower() if sep else None
        found = {d.strip().lower() for d in (rest if sep else value).split(",")}
        if target in (None, token) and found & wanted:
            return value.strip()
    return None


def user_agent(cfg: DownloadConfig) -> str:
    if cfg.user_agent:
        return cfg.user_agent
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("aig")
    except PackageNotFoundError:
        v = "dev"
    return f"{UA_TOKEN}/{v} (image dataset builder; honours X-Robots-Tag noai)"


def _session(cfg: DownloadConfig):
    """One requests session per thread and setting (connection reuse; urllib3 does the retries)."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    key = (cfg.retries, cfg.backoff)
    sessions = getattr(_local, "sessions", None)
    if sessions is None:
        sessions = _local.sessions = {}
    if key not in sessions:
        s = requests.Session()
        retry = Retry(total=cfg.retries, connect=cfg.retries, read=cfg.retries, status=cfg.retries,
                      backoff_factor=cfg.backoff, status_forcelist=RETRY_STATUSES, allowed_methods=["GET"],
                      raise_on_status=False, respect_retry_after_header=True)
        adapter = HTTPAdapter(max_retries=retry)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        sessions[key] = s
    return sessions[key]


def fetch(url: str, cfg: DownloadConfig) -> bytes:
    """The body of `url`, or FetchError with the reason it cannot be used."""
    import requests

    try:
        resp = _session(cfg).get(url, timeout=cfg.timeout, stream=True, headers={"User-Agent": user_agent(cfg)})
    except requests.RequestException as e:
        raise FetchError("download_error", f"{type(e).__name__}: {_short(e)} (after {cfg.retries} retries)") from None
    with resp:
        tag = opted_out(resp.raw.headers.getlist("X-Robots-Tag"), cfg.disallowed_header_directives)
        if tag is not None:
            raise FetchError("opted_out", f"X-Robots-Tag: {tag}")
        if resp.status_code >= 400:
            raise FetchError("http_error", f"HTTP {resp.status_code} {resp.reason or ''}".strip())
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cfg.max_bytes:
            raise FetchError(TOO_LARGE, f"{declared} bytes declared, over max_bytes {cfg.max_bytes}")
        body, size = [], 0
        try:
            for block in resp.iter_content(64 * 1024):
                size += len(block)
                if size > cfg.max_bytes:
                    raise FetchError(TOO_LARGE, f"over max_bytes {cfg.max_bytes} bytes")
                body.append(block)
        except requests.RequestException as e:
            raise FetchError("download_error", f"{type(e).__name__}: {_short(e)}") from None
    return b"".join(body)


def _short(e: BaseException) -> str:
    text = str(e)
    return text if len(text) < 200 else text[:200] + "..."
