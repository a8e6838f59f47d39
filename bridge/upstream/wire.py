"""ZappWay's HTTP/1.1 wire: httpcore's connection pools, and the answer both kinds of send give.

`UpstreamPool` sends on httpcore's pools directly, not through httpx's `Request` and `Response`
models: building and mapping those cost ~50 µs of CPU per call under gevent (bench/PROFILE.md,
"the upstream's wire"), a tenth of a whole call to an instant upstream. Tests hand the pool an
httpx transport instead (the simulator's WSGI app, a `MockTransport`); `Answer` is what either
send returns, so the client above never knows which one ran.

`QuickCheckBackend` is httpcore's own sync backend with one change. Before reusing an idle
pooled connection, httpcore asks whether its socket is readable (a server that closed it would
have sent EOF) with a zero-timeout `select.poll()`. Under gevent's monkey-patching that is
gevent's poll, which registers a watcher and runs the hub even though it never waits: ~65 µs of
CPU per call on the bench machine. The check never blocks, so the operating system's own poll
answers it in one system call without leaving the greenlet.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpcore

_POLL: Callable[[], select.poll]
try:
    from gevent.monkey import get_original
except ImportError:  # pragma: no cover - gevent is a dependency; without it nothing is patched
    _POLL = select.poll
else:
    _POLL = get_original("select", "poll")  # the OS's poll even once gevent patched `select`

KEEPALIVE_EXPIRY_S = 5.0  # httpx's default: an idle connection older than this is not reused


@dataclass(frozen=True, slots=True)
class Answer:
    """One upstream answer, read whole: status, raw headers, body."""

    status_code: int
    raw_headers: Sequence[tuple[bytes, bytes]]
    content: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def header(self, name: str) -> str | None:
        """The header's value (the last one when repeated), or None; names are case-blind.
        Decoded on demand: only error answers are asked for headers."""
        wanted = name.lower().encode("ascii")
        found = None
        for key, value in self.raw_headers:
            if key.lower() == wanted:
                found = value
        return None if found is None else found.decode("latin-1")

    def json(self) -> Any:
        """The body parsed as JSON (raises ValueError when it is not)."""
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


def json_body(value: Any) -> bytes:
    """A request's JSON body, encoded as httpx encodes `json=` (compact, UTF-8, no NaN)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def new_pool(max_connections: int, keepalive: int, tls: ssl.SSLContext) -> httpcore.ConnectionPool:
    """One shard of connections to ZappWay (HTTP/1.1, never retried at the connection level:
    `UpstreamClient` decides what may be sent again)."""
    return httpcore.ConnectionPool(
        ssl_context=tls,
        max_connections=max_connections,
        max_keepalive_connections=keepalive,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
        retries=0,
        network_backend=QuickCheckBackend(),
    )


class QuickCheckBackend(httpcore.NetworkBackend):
    """httpcore's sync backend whose streams check an idle socket without yielding."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return QuickCheckStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - ZappWay is reached over TCP
        return QuickCheckStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class QuickCheckStream(httpcore.NetworkStream):
    """A stream that answers `is_readable` with the OS's zero-timeout poll; all else is the
    wrapped stream's (TLS included: `start_tls` wraps the upgraded stream in turn)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, timeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return QuickCheckStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return readable_now(self._stream.get_extra_info("socket"))
        return self._stream.get_extra_info(info)


def readable_now(sock: socket.socket | None) -> bool:
    """Whether a recv on `sock` would return at once (data, or the EOF of a closed peer).
    A socket without a descriptor counts as readable, as httpcore counts it: its next read
    ends the connection."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = _POLL()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))
