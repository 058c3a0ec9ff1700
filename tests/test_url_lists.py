"""URL lists (img2dataset-style) downloaded from a local HTTP server, end to end through the CLI."""

from __future__ import annotations

import gzip
import io
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_aig, sql_rows
from corpus import make_images

from aig.pipeline.fetch import opted_out


class Server:
    """Serves /img/N.png and misbehaving paths; records user agents and hits per path."""

    def __init__(self, images: list[bytes]):
        self.images, self.hits, self.agents, self.lock = images, {}, set(), threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with outer.lock:
                    n = outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                    outer.agents.add(self.headers.get("User-Agent", ""))
                name = self.path.rsplit("/", 1)[-1].split(".")[0]
                headers, status, body = {}, 200, b""
                if self.path.startswith("/img/"):
                    body = outer.images[int(name)]
                elif name == "noai":
                    headers, body = {"X-Robots-Tag": "noai"}, outer.images[0]
                elif name == "aigonly":
                    headers, body = {"X-Robots-Tag": "aig: noimageai"}, outer.images[1]
                elif name == "otherbot":  # an opt-out addressed to another crawler does not apply to aig
                    headers, body = {"X-Robots-Tag": "otherbot: noai"}, outer.images[3]
                elif name == "flaky":  # 503, then 429, then the image: retried with backoff
                    status = {1: 503, 2: 429}.get(n, 200)
                    body = outer.images[2] if status == 200 else b"busy"
                elif name == "down":
                    status, body = 503, b"down"
                elif name == "big":
                    body = b"\0" * 300_000
                else:
                    status, body = 404, b"not found"
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("urls")
    images = [p.read_bytes() for p in make_images(base / "imgs", 5, size=(48, 40), fmt="PNG")]
    server = Server(images)
    yield base, server
    server.httpd.shutdown()


@pytest.fixture(scope="module")
def url_build(served):
    """One build over a CSV, a JSONL, a gzipped TSV and a Parquet list: good, opted-out and broken URLs."""
    base, server = served
    u = server.url
    (base / "list.csv").write_text("url,caption\n" + "".join(f"{u}/img/{i}.png,photo {i}\n" for i in range(2))
                                   + f"{u}/noai.png,opted out\n{u}/missing.png,gone\n")
    (base / "list.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"url": f"{u}/flaky.png", "caption": "after retries"}, {"url": f"{u}/aigonly.png", "caption": "x"},
        {"url": f"{u}/down.png", "caption": "x"}]) + "\n")
    (base / "list.tsv.gz").write_bytes(gzip.compress(
        f"url\tcaption\n{u}/big.png\ttoo big\nhttp://127.0.0.1:{_closed_port()}/x.png\tno server\n".encode()))
    buf = io.BytesIO()
    pq.write_table(pa.table({"url": [f"{u}/img/4.png", f"{u}/otherbot.png"], "caption": ["parquet row", "y"]}), buf)
    (base / "list.parquet").write_bytes(buf.getvalue())
    (base / "aig.toml").write_text("[build-data.ingest.download]\ntimeout = 5.0\nretries = 2\nbackoff = 0.01\n"
                                   "max_bytes = 100000\n")
    out = base / "ds"
    proc = run_aig("build-data", "-c", base / "aig.toml", "-o", out, "--executor", "local", "--stages", "ingest",
                   "--size", 32, *[a for f in ("list.csv", "list.jsonl", "list.tsv.gz", "list.parquet")
                                   for a in ("--input-list", base / f)])
    return out, proc, server


def test_url_lists_download_and_record_every_url(url_build):
    out, proc, server = url_build
    assert "ingest: 11 inputs -> 5 samples, 6 failures" in proc.stdout
    rows = sql_rows(out, "select 'ok' as reason, input_path, caption from samples union all "
                         "select reason, input_path, error from failures order by input_path")
    by_name = {r["input_path"].rsplit("/", 1)[-1]: r for r in rows}
    assert {k: v["reason"] for k, v in by_name.items()} == {
        "0.png": "ok", "1.png": "ok", "4.png": "ok", "flaky.png": "ok", "otherbot.png": "ok",
        "noai.png": "opted_out", "aigonly.png": "opted_out", "missing.png": "http_error",
        "down.png": "http_error", "big.png": "too_large", "x.png": "download_error"}
    assert by_name["0.png"]["caption"] == "photo 0" and by_name["4.png"]["caption"] == "parquet row"
    assert by_name["noai.png"]["caption"] == "X-Robots-Tag: noai"
    assert "404" in by_name["missing.png"]["caption"] and "503" in by_name["down.png"]["caption"]
    assert server.hits["/flaky.png"] >= 3  # 503, 429, then 200 (planning; ingest fetches again)
    assert server.hits["/down.png"] == 3  # one try + 2 retries, then recorded
    assert all(a.startswith("aig/") for a in server.agents)


def test_url_list_columns_format_and_directives(served, tmp_path):
    """img2dataset options: --url-col/--caption-col, --input-format, --disallowed-header-directives."""
    base, server = served
    (tmp_path / "links.data").write_text(json.dumps([{"link": f"{server.url}/noai.png", "alt": "kept now"},
                                                     {"link": f"{server.url}/img/3.png", "alt": "three"}]))
    out = tmp_path / "ds"
    args = ["build-data", "-o", out, "--executor", "local", "--stages", "ingest", "--size", 32,
            "--input-list", tmp_path / "links.data", "--input-format", "json"]
    from typer.testing import CliRunner

    from aig.cli import app

    bad = CliRunner().invoke(app, [str(a) for a in args])  # refused before any work: in-process is enough
    assert bad.exit_code == 2 and "has no path column" in bad.output and "columns found: 'link', 'alt'" in bad.output
    proc = run_aig(*args, "--url-col", "link", "--caption-col", "alt", "--disallowed-header-directives", "")
    assert "ingest: 2 inputs -> 2 samples, 0 failures" in proc.stdout
    assert sorted(r["caption"] for r in sql_rows(out, "select caption from samples")) == ["kept now", "three"]


def test_opted_out_rule():
    directives = ["noai", "noimageai"]
    assert opted_out(["noai"], directives) == "noai"
    assert opted_out(["noindex, NoImageAI"], directives) == "noindex, NoImageAI"
    assert opted_out(["aig: noai"], directives) == "aig: noai"
    assert opted_out(["otherbot: noai", "nofollow"], directives) is None
    assert opted_out(["noai"], []) is None
