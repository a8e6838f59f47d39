"""A bound on how long a request's body may stall: `WEB_BODY_TIMEOUT` seconds without a byte.

A client that announces a `Content-Length` and sends less (a proxy cut, a crashed sender, or
on purpose) would otherwise hold a connection of the worker for as long as it stays open:
gunicorn reads the body only when the app asks for it, and neither gunicorn nor werkzeug's
development server bounds that read. Both hand the app the client's socket
(`gunicorn.socket`, `werkzeug.socket`), so `BodyTimeout` sets a timeout on it while a request
with a body is handled and restores it before the answer is written. A stalled read then
raises an `OSError`, which werkzeug's input stream (always limited here, by
`MAX_CONTENT_LENGTH`) turns into `ClientDisconnected`, rendered by `bridge.web.errors` as a
400 `incomplete_body`. The timeout is per read (silence), not for the whole body: a slow but
steady upload of an allowed size still gets through.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")


class BodyTimeout:
    """WSGI middleware: a request with a body reads it under a socket timeout."""

    def __init__(self, app: WSGIApplication, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        sock = next((environ[k] for k in SOCKET_KEYS if k in environ), None)
        if sock is None or not has_body(environ):
            return self.app(environ, start_response)
        previous = sock.gettimeout()
        sock.settimeout(self.seconds)  # a gevent socket under gevent: it waits as a greenlet
        try:
            return self.app(environ, start_response)
        finally:
            sock.settimeout(previous)


def has_body(environ: WSGIEnvironment) -> bool:
    """Whether the request announces a body (GETs and empty POSTs cost no system call)."""
    length = environ.get("CONTENT_LENGTH") or "0"
    return length != "0" or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
