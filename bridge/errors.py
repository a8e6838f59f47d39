"""The one translation from exceptions to HTTP responses.

Every error leaves as `{"error": {"code", "message"}}` (the upstream's documented envelope), with
`fields` added for validation errors. Statuses are chosen for what no-code tools do with them:
401 means "reconnect" (so transient upstream faults never become 401), 429 always carries
Retry-After, 5xx from ZappWay become 502/503/504, and our own bugs a plain 500 with no detail.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from bridge.connections import ConnectionAuthError, ConnectionRevoked, InvalidApiKey
from bridge.crypto import DecryptionError
from bridge.upstream_errors import MAX_MESSAGE, UpstreamError, UpstreamRateLimited

log = logging.getLogger(__name__)


class APIError(Exception):
    """Raised by views for a client-facing error with a chosen status and code."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """Build the JSON error body every handler returns."""
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def validation_message(messages: Any, prefix: str = "") -> tuple[str, list[str]]:
    """Flatten marshmallow messages into one sentence naming the fields, and the field list."""
    if not isinstance(messages, dict):
        return f"Invalid input: {messages}", []
    parts, names = [], []
    for field, problems in messages.items():
        name = f"{prefix}{field}"
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


def init_app(app: Flask) -> None:
    """Register the handlers; called once by the app factory."""

    @app.errorhandler(APIError)
    def _api_error(exc: APIError) -> Response:
        return error_response(exc.status, exc.code, exc.message, **exc.extra)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        message, fields = validation_message(exc.messages)
        return error_response(422, "invalid_input", message, fields=fields)

    @app.errorhandler(InvalidApiKey)
    def _invalid_key(exc: InvalidApiKey) -> Response:
        return error_response(422, "invalid_input", str(exc), fields=["api_key"])

    @app.errorhandler(ConnectionAuthError)
    def _auth(exc: ConnectionAuthError) -> Response:
        return error_response(
            401,
            exc.reason,
            exc.message,
            headers={"WWW-Authenticate": 'Bearer realm="zappway-bridge"'},
        )

    @app.errorhandler(ConnectionRevoked)
    def _revoked(_exc: ConnectionRevoked) -> Response:
        return error_response(401, "revoked_credentials", "This connection has been revoked")

    @app.errorhandler(DecryptionError)
    def _undecryptable(_exc: DecryptionError) -> Response:
        log.error("crypto.decrypt_failed: BRIDGE_SECRET_KEY changed without BRIDGE_OLD_SECRET_KEYS")
        return error_response(
            500, "stored_key_unreadable",
            "The bridge cannot decrypt this connection's stored key (server secret changed)",
        )  # fmt: skip

    @app.errorhandler(UpstreamError)
    def _upstream(exc: UpstreamError) -> Response:
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
        return error_response(exc.status_code, exc.reason, exc.message, headers=headers, **extra)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        messages = {
            404: "No such endpoint",
            405: "Method not allowed on this endpoint",
            413: f"Request body too large (max {app.config.get('MAX_CONTENT_LENGTH')} bytes)",
        }
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(status, code, messages.get(status, exc.description or exc.name))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("bridge.unhandled_error type=%s", type(exc).__name__)
        return error_response(500, "internal_error", "Internal error; it has been logged")
