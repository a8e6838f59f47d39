"""The one translation from exceptions to HTTP responses.

Every error leaves as `{"error": {"code", "message"}}` (the upstream's documented envelope), with
`fields` added for validation errors. Statuses are chosen for what no-code tools do with them:
401 means "reconnect" (so transient upstream faults never become 401), 429 always carries
Retry-After, 5xx from ZappWay become 502/503/504, and our own bugs a plain 500 with no detail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from bridge.connections.service import ConnectionAuthError, ConnectionRevoked, InvalidApiKey
from bridge.documents.service import DocumentBusy
from bridge.infra.crypto import DecryptionError
from bridge.runs.idempotency import IdempotencyConflict
from bridge.upstream.errors import MAX_MESSAGE, UpstreamError, UpstreamRateLimited

log = logging.getLogger(__name__)


class APIError(Exception):
    """Raised by views for a client-facing error with a chosen status and code."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def validation_message(messages: Any, prefix: str = "") -> tuple[str, list[str]]:
    """Flatten marshmallow messages into one sentence naming the fields, and the field list."""
    if not isinstance(messages, dict):
        return f"Invalid input: {messages}", []
    parts, names = [], []
    for field_name, problems in messages.items():
        name = f"{prefix}{field_name}"
        if isinstance(problems, dict) and not all(isinstance(k, int) for k in problems):
            nested, nested_names = validation_message(problems, f"{name}.")
            parts.append(nested.removeprefix("Invalid input: "))
            names.extend(nested_names)
            continue
        first = problems[0] if isinstance(problems, list) and problems else problems
        if isinstance(first, dict):
            first = next(iter(first.values()), "invalid")
            first = first[0] if isinstance(first, list) and first else first
        parts.append(f"{name}: {first}")
        names.append(name)
    return "Invalid input: " + "; ".join(parts), names


@dataclass(frozen=True)
class ErrorInfo:
    """An exception as the client will see it."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": _clip(self.message), **self.extra}}


def translate(exc: Exception) -> ErrorInfo:
    """Map any exception to status, code and message: the single translation to HTTP terms."""
    if isinstance(exc, APIError):
        return ErrorInfo(exc.status, exc.code, exc.message, extra=exc.extra)
    if isinstance(exc, ValidationError):
        message, fields = validation_message(exc.messages)
        return ErrorInfo(422, "invalid_input", message, extra={"fields": fields})
    if isinstance(exc, InvalidApiKey):
        return ErrorInfo(422, "invalid_input", str(exc), extra={"fields": ["api_key"]})
    if isinstance(exc, ConnectionAuthError):
        challenge = {"WWW-Authenticate": 'Bearer realm="zappway-bridge"'}
        return ErrorInfo(401, exc.reason, exc.message, headers=challenge)
    if isinstance(exc, ConnectionRevoked):
        return ErrorInfo(401, "revoked_credentials", "This connection has been revoked")
    if isinstance(exc, IdempotencyConflict):
        return ErrorInfo(exc.status, exc.code, exc.message, headers={"Retry-After": "1"})
    if isinstance(exc, DocumentBusy):
        return ErrorInfo(409, "document_busy", str(exc), headers={"Retry-After": "2"})
    if isinstance(exc, DecryptionError):
        log.error("crypto.decrypt_failed: BRIDGE_SECRET_KEY changed without BRIDGE_OLD_SECRET_KEYS")
        return ErrorInfo(
            500, "stored_key_unreadable",
            "The bridge cannot decrypt this connection's stored key (server secret changed)",
        )  # fmt: skip
    if isinstance(exc, UpstreamError):
        return _upstream(exc)
    if isinstance(exc, HTTPException):
        return _http(exc)
    log.error("bridge.unhandled_error type=%s", type(exc).__name__, exc_info=exc)
    return ErrorInfo(500, "internal_error", "Internal error; it has been logged")


def _upstream(exc: UpstreamError) -> ErrorInfo:
    headers = {}
    if isinstance(exc, UpstreamRateLimited):
        headers["Retry-After"] = exc.retry_after_header
    extra: dict[str, Any] = {}
    upstream_status = getattr(exc, "upstream_status", 0)
    if upstream_status:
        extra["upstream_status"] = upstream_status
    fields = getattr(exc, "fields", ())
    if fields:
        extra["fields"] = list(fields)
    return ErrorInfo(exc.status_code, exc.reason, exc.message, headers=headers, extra=extra)


def _http(exc: HTTPException) -> ErrorInfo:
    status = exc.code or 500
    messages = {
        404: "No such endpoint",
        405: "Method not allowed on this endpoint",
        413: "Request body too large",
    }
    code = (exc.name or "error").lower().replace(" ", "_")
    return ErrorInfo(status, code, messages.get(status, exc.description or exc.name))


def render(info: ErrorInfo) -> Response:
    response = jsonify(info.body())
    response.status_code = info.status
    response.headers.update(info.headers)
    return response


def init_app(app: Flask) -> None:
    """Route every exception through `translate`; called once by the app factory."""

    @app.errorhandler(Exception)
    def _any(exc: Exception) -> Response:
        return render(translate(exc))
