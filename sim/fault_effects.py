"""What firing fault rules do to a request: sleep, stall, fail, or break the connection.

Connection resets raise ``SimulatedReset`` from inside the response body iterator, after
Flask is done with the request:

* over real HTTP (werkzeug server) it is a ``ConnectionError``, which werkzeug treats as a
  dropped connection: nothing (or, with ``after_headers``, only a partial body) is sent,
  the socket is shut down (``SO_LINGER`` 0), and the client sees EOF or a reset, which
  httpx reports as ``RemoteProtocolError`` or ``ReadError``;
* in-process through ``httpx.WSGITransport`` the same exception propagates out of the
  client call, and since it is also an ``httpx.RemoteProtocolError`` the caller handles
  it exactly like a transport failure.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
from flask import Response, g, request

from .envelope import ApiError, html_response
from .faults import FaultRule
from .state import Store

STEP_S = 0.05
DEFAULT_STALL_S = 3600.0
_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    402: "USAGE_LIMIT",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "RATE_LIMITED",
    500: "INTERNAL_SERVER_ERROR",
}
_HTML_TITLES = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


class SimulatedReset(httpx.RemoteProtocolError, ConnectionResetError):
    """A dropped connection: werkzeug sees ConnectionError, httpx callers a transport error."""


def apply(rules: list[FaultRule], store: Store) -> Response | None:
    """Run the fired rules in order; return a response that replaces the real one, if any.

    Raises:
        ApiError: for the JSON-shaped faults (500, 429).
    """
    for rule in rules:
        kind = rule.kind
        if kind == "latency":
            with store.lock:
                extra = store.faults.rng.uniform(0, rule.jitter) if rule.jitter else 0.0
            wait(store, (rule.seconds or 0.0) + extra)
        elif kind == "stall":
            wait(store, rule.seconds if rule.seconds is not None else DEFAULT_STALL_S)
        elif kind == "edge_timeout":
            seconds = rule.seconds if rule.seconds is not None else store.settings.edge_timeout_s
            if wait(store, seconds):
                return html_response(524, "A timeout occurred")
        elif kind in ("status", "html_5xx"):
            return _status(rule)
        elif kind == "rate_limit":
            headers = {} if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
            raise ApiError(
                429,
                "RATE_LIMITED",
                "Rate limit exceeded.",
                legacy_body={"error": "RATE_LIMIT"},
                headers=headers,
            )
        elif kind == "reset" and not rule.after_headers:
            g.sim_reset = True
            return Response(broken_body(b""), status=200)
        else:  # reset after headers, bad_json, drip, stream_error: applied to the response
            g.setdefault("sim_late_faults", []).append(rule)
    return None


def _status(rule: FaultRule) -> Response:
    status = rule.status or (500 if rule.kind == "status" else 502)
    if rule.kind == "html_5xx" or status in _HTML_TITLES or status >= 520:
        return html_response(status, _HTML_TITLES.get(status, "Origin Error"))
    code = _STATUS_CODES.get(status, "INTERNAL_SERVER_ERROR" if status >= 500 else "ERROR")
    raise ApiError(status, code, f"Injected fault: HTTP {status}.")


def wait(store: Store, seconds: float) -> bool:
    """Sleep in small steps; stop early on admin release or client disconnect.

    Returns True when the full time elapsed.
    """
    release = store.release
    deadline = time.monotonic() + seconds
    environ = request.environ
    while (left := deadline - time.monotonic()) > 0:
        if release.wait(min(STEP_S, left)) or client_gone(environ):
            return False
    return True


def client_gone(environ: dict[str, Any]) -> bool:
    """Peek at the werkzeug socket: readable with no data means the client hung up."""
    sock = environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket):
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def broken_body(prefix: bytes) -> Iterator[bytes]:
    """Return a body that yields ``prefix`` (if any), then drops the connection.

    The socket is looked up now: the body is iterated after the request context is gone.
    """
    sock = request.environ.get("werkzeug.socket")
    return _broken(prefix, sock if isinstance(sock, socket.socket) else None)


def _broken(prefix: bytes, sock: socket.socket | None) -> Iterator[bytes]:
    if prefix:
        yield prefix
    if sock is not None:
        # Linger 0 makes the final close() send RST; the shutdown stops werkzeug from
        # waiting on the kept-alive connection for a next request that never comes.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
    raise SimulatedReset("Server disconnected without sending a complete response.")


def late(response: Response, store: Store) -> Response:
    """Apply the rules that act on the finished response (bad JSON, drip, late reset)."""
    for rule in g.get("sim_late_faults", []):
        if rule.kind == "bad_json" and not response.is_streamed:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])
        elif rule.kind == "drip":
            chunks = _chunks(response)
            response = _rewrap(response, _dripping(chunks, store, rule.seconds or 0.1))
        elif rule.kind == "reset":
            body = b"".join(_chunks(response))
            g.sim_reset = True
            response = _rewrap(response, broken_body(body[: max(1, len(body) // 2)]))
    return response


def _chunks(response: Response) -> Iterable[bytes]:
    if response.is_streamed:
        return response.response  # type: ignore[return-value]
    body = response.get_data()
    size = max(1, len(body) // 10 + 1)
    return [body[i : i + size] for i in range(0, len(body), size)]


def _dripping(chunks: Iterable[bytes], store: Store, seconds: float) -> Iterator[bytes]:
    release: threading.Event = store.release
    for index, chunk in enumerate(chunks):
        if index and release.wait(seconds):
            seconds = 0.0
        yield chunk


def _rewrap(response: Response, body: Iterable[bytes]) -> Response:
    new = Response(body, status=response.status_code, headers=response.headers)
    new.headers.pop("Content-Length", None)
    return new
