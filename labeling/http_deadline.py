"""A whole-request deadline for `requests`: socket timeouts bound each read, not the request, so a server that
trickles a byte now and then would hold a request forever. A watchdog shuts the request's socket down when
the deadline passes; the blocked read then fails at once.

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
    def __init__(self):
        self.lock = threading.Lock()
        self.sock = None
        self.expired = False

    def use(self, sock) -> None:
        with self.lock:
            self.sock = sock
            if self.expired:
                _shutdown(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            if self.sock is not None:
                _shutdown(self.sock)


def _shutdown(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@contextmanager
def deadline(seconds: float):
    """Within the block, requests through a DeadlineAdapter are cut off `seconds` after it starts;
    yields a function telling whether that happened."""
    watch = _Watch()
    timer = threading.Timer(seconds, watch.expire)
    timer.daemon = True
    _current.watch = watch
    timer.start()
    try:
        yield lambda: watch.expired
    finally:
        timer.cancel()
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
