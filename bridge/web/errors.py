"""Rendering errors as HTTP responses: the one place an exception becomes a status and a body.

Every error leaves as `{"error": {"code", "message", ...}}` (the upstream's documented envelope).
What status and code an error has is the error's own business (`bridge.infra.errors.BridgeError`
and its subclasses carry them), so this module imports no feature: it renders `BridgeError`s,
marshmallow's `ValidationError` (422 naming the fields), werkzeug's `HTTPException` (404, 405,
413 as JSON), and anything else as a bare 500 whose detail goes to the log, never to the caller.
Statuses are chosen for what no-code tools do with them: 401 means "reconnect" (so transient
upstream faults never become 401), 429 always carries Retry-After, ZappWay's own failures are
502/503/504.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, has_request_context, jsonify
from werkzeug.exceptions import ClientDisconnected, HTTPException

from bridge.infra import storage
from bridge.infra.errors import BridgeError, ClientError, as_bridge_error
from bridge.web.context import absolute_url

log = logging.getLogger(__name__)
HTTP_MESSAGES = {
    404: "No such endpoint",
    405: "Method not allowed on this endpoint",
    413: "Request body too large",
}
INCOMPLETE_BODY = (
    "The request body stopped before its Content-Length was reached (nothing arrived for "
    "WEB_BODY_TIMEOUT seconds, or the connection closed); send the whole body"
)


def from_http(exc: HTTPException) -> BridgeError:
    """werkzeug's routing and body errors in the bridge's envelope."""
    if isinstance(exc, ClientDisconnected):  # the body stalled (`BodyTimeout`) or was cut off
        return ClientError(400, "incomplete_body", INCOMPLETE_BODY)
    status = exc.code or 500
    code = (exc.name or "error").lower().replace(" ", "_")
    return ClientError(status, code, HTTP_MESSAGES.get(status, exc.description or exc.name))


def classify(exc: BaseException) -> BridgeError:
    """The error an exception is answered as, logged when it is ours to fix (the console's
    HTML pages answer the same status and message as the API)."""
    if isinstance(exc, HTTPException):
        error = from_http(exc)
    else:
        error = storage.unavailable(exc) or as_bridge_error(exc)
    if error is not exc and not isinstance(exc, HTTPException) and error.status_code >= 500:
        log.error("bridge.unhandled_error type=%s", type(exc).__name__, exc_info=exc)
    elif error.status_code >= 500 and error.status_code not in (502, 503, 504):
        log.error("bridge.error code=%s message=%s", error.code, error.message)
    return error


def render(exc: BaseException) -> Response:
    """The response for any exception (logged when it is ours to fix)."""
    error = classify(exc)
    body = error.body()
    if str(body["error"].get("status_url", "")).startswith("/") and has_request_context():
        body["error"]["status_url"] = absolute_url(body["error"]["status_url"])
    response = jsonify(body)
    response.status_code = error.status_code
    response.headers.update(error.headers())
    if isinstance(exc, HTTPException):
        allowed = exc.get_response().headers.get("Allow")
        if allowed:
            response.headers["Allow"] = allowed
    return response


def init_app(app: Flask) -> None:
    """Route every exception through `render`; called once by the app factory."""

    @app.errorhandler(Exception)
    def _any(exc: Exception) -> Response:
        return render(exc)
