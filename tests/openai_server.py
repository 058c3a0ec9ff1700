"""A loopback OpenAI-compatible chat-completions server for tests and benchmarks.

Behaviour per image is scripted by the sha256 of the image bytes in the request: a list of steps used one per
request for that image (the last step repeats). Steps: "valid", "consistent", "malformed", "truncated",
"slow", "429", "500", "garbage-body", ("caption" or "content", the reply's text), and misbehaving ones: "trickle"
(headers, then one body byte every `trickle_s`), "trickle-headers" (the status line byte by byte), "huge" (a
`huge_bytes` body) and "content-list" (`message.content` is a list). `hangups` records how long each trickled reply
lasted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VALID = {"verdict": "inconsistent", "inconsistencies": [
    {"category": "anatomy", "description": "the left hand has six fingers", "confidence": 0.9, "box": [0.1, 0.2, 0.3, 0.4]},
    {"category": "text_and_glyphs", "description": "the sign's letters are garbled", "confidence": 0.3}]}
CONSISTENT = {"verdict": "consistent", "inconsistencies": []}


class ScriptedServer:
    def __init__(self, default="valid", slow_s: float = 3.0, delay_s: float = 0.0, trickle_s: float = 0.3,
                 huge_bytes: int = 2_000_000):
        self.scripts: dict[str, list] = {}
        self.default, self.slow_s, self.delay_s = default, slow_s, delay_s
        self.trickle_s, self.huge_bytes, self.hangups = trickle_s, huge_bytes, []
        self.calls: dict[str, int] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real servers: clients can reuse connections
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.handle(self, body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, h, body: dict) -> None:
        image = next(c for c in body["messages"][0]["content"] if c["type"] == "image_url")["image_url"]["url"]
        digest = hashlib.sha256(base64.b64decode(image.split(",", 1)[1])).hexdigest()
        with self.lock:
            n = self.calls.get(digest, 0)
            self.calls[digest] = n + 1
            self.requests.append({"sha256": digest, "auth": h.headers.get("Authorization"), "port": h.client_address[1],
                                  "response_format": body.get("response_format"), "temperature": body.get("temperature")})
        script = self.scripts.get(digest, [self.default])
        step = script[min(n, len(script) - 1)]
        if self.delay_s:
            time.sleep(self.delay_s)
        if step in ("429", "500"):
            return self._send(h, int(step), b'{"error": "try again"}', {"Retry-After": "0"} if step == "429" else {})
        if step in ("trickle", "trickle-headers"):
            return self._trickle(h, step)
        if step == "huge":
            return self._send(h, 200, b" " * self.huge_bytes)
        if step == "garbage-body":
            return self._send(h, 200, b"<html>proxy error</html>")
        if step == "slow":
            time.sleep(self.slow_s)
            step = "valid"
        finish = "stop"
        if isinstance(step, tuple):
            content = step[1]
        elif step == "content-list":
            content = [{"type": "text", "text": json.dumps(VALID)}]
        elif step == "malformed":
            content = "I think this image is quite interesting, but I cannot say more."
        elif step == "truncated":
            content, finish = json.dumps(VALID)[:60], "length"
        else:
            content = json.dumps(CONSISTENT if step == "consistent" else VALID)
        reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}]}
        self._send(h, 200, json.dumps(reply).encode())

    def _trickle(self, h, step: str) -> None:
        start = time.monotonic()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        data = head + b" " * 1000 if step == "trickle-headers" else b" " * 1000
        try:
            if step == "trickle":
                h.wfile.write(head)
            for i in range(len(data)):
                h.wfile.write(data[i:i + 1])
                h.wfile.flush()
                time.sleep(self.trickle_s)
        except (BrokenPipeError, ConnectionResetError):
            pass
        with self.lock:
            self.hangups.append(time.monotonic() - start)

    @staticmethod
    def _send(h, status: int, data: bytes, headers: dict | None = None) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass
