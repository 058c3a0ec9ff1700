"""A whole-request deadline for `requests`: socket timeouts bound each read, not the request, so a server that
trickles a byte now and then would hold a request forever. A watchdog shuts the request's socket down when
the deadline passes (counted from when the request is sent: connecting has its own timeout, and each retry
gets a fresh deadline); the blocked read then fails at once.

`DeadlineAdapter` makes urllib3's connections tell the calling thread's `deadline()` which socket they use.
"""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()  # .watch: the running deadline's state, in the thread making the request


class _Watch:
    """One request's deadline: each HTTP attempt (a retry is a new one) gets `seconds` from when it is sent."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.lock = threading.Lock()
        self.timer = None
        self.sock = None
        self.expired = False

    def use(self, sock) -> None:
        with self.lock:
            self.cancel()
            self.sock, self.expired = sock, False
            self.timer = threading.Timer(self.seconds, self.expire)
            self.timer.daemon = True
            self.timer.start()

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            if self.sock is not None:
                _shutdown(self.sock)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


def _shutdown(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@contextmanager
def deadline(seconds: float):
    """Within the block, each HTTP attempt through a DeadlineAdapter is cut off `seconds` after it is sent;
    yields a function telling whether the last attempt was."""
    watch = _Watch(seconds)
    _current.watch = watch
    try:
        yield lambda: watch.expired
    finally:
        with watch.lock:
            watch.cancel()
        _current.watch = None


def _register(conn) -> None:
    watch = getattr(_current, "watch", None)
    if watch is not None and conn.sock is not None:
        watch.use(conn.sock)


class _Tracked:
    def request(self, *args, **kwargs):
        if self.sock is None:
            self.connect()
        _register(self)
        return super().request(*args, **kwargs)


class _HTTPConnection(_Tracked, HTTPConnection):
    pass


class _HTTPSConnection(_Tracked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
