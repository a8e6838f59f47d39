"""A chunked request body (no `Content-Length`) is read up front, so its size is known.

werkzeug enforces `MAX_CONTENT_LENGTH` on a body of announced length (413 before reading), but
on a chunked one it only stops reading at the limit: a larger body reached the app cut short,
as a 200 on a truncated document, a 400 "not JSON" or a webhook's 401 bad signature, never the
413 the README promises. `ChunkedBody` reads such a body (up to one byte past the limit) and
hands the app the same request with a `Content-Length` instead of `Transfer-Encoding`, so
werkzeug's own checks apply:

- over the limit: the length says so, and reading it is a 413, as for an announced length;
- a sender that stops mid-body (the socket timeout of `BodyTimeout`, outside this middleware):
  the length announces one byte more than arrived, so reading it is werkzeug's
  `ClientDisconnected`, the 400 `incomplete_body` of a short announced body.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

READ_SIZE = 64 * 1024


class ChunkedBody:
    """WSGI middleware: a chunked body becomes a buffered one with its length."""

    def __init__(self, app: WSGIApplication, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("CONTENT_LENGTH")
            or "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        ):
            return self.app(environ, start_response)
        body, complete = read_up_to(environ["wsgi.input"], self.max_bytes + 1)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body) if complete else len(body) + 1)
        # werkzeug ignores a length beside `Transfer-Encoding: chunked` (as HTTP says to), and
        # the body is no longer chunked: it is the buffer.
        del environ["HTTP_TRANSFER_ENCODING"]
        environ.pop("wsgi.input_terminated", None)
        return self.app(environ, start_response)


def read_up_to(stream: io.RawIOBase | io.BufferedIOBase, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the stream, and whether it ended (or the limit was reached)
    rather than failing mid-way."""
    parts: list[bytes] = []
    size = 0
    try:
        while size < limit:
            part = stream.read(min(READ_SIZE, limit - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
    except Exception:  # a stalled or dropped sender, a malformed chunk: whatever the server raises
        return b"".join(parts), False
    return b"".join(parts), True
