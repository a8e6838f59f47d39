"""Response and error shapes of the two profiles, in one place.

Documented: ``{"data", "meta"?}`` and ``{"error": {"code", "message"}}``, 201 on creates.
Legacy: bare JSON, ``{"error": "CODE"}`` (or a handler-specific body), never 201, and
plain-text or HTML bodies where the ancestor's framework produced them.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from .state import current_store

_UNSET: Any = object()


class ApiError(Exception):
    """An upstream error; ``legacy_status``/``legacy_body`` override the legacy rendering."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        legacy_status: int | None = None,
        legacy_body: Any = _UNSET,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.legacy_status = legacy_status
        self.legacy_body = legacy_body
        self.details = details
        self.headers = headers or {}

    def render(self, legacy: bool) -> Response:
        if not legacy:
            error: dict[str, Any] = {"code": self.code, "message": self.message}
            if self.details is not None:
                error["details"] = self.details
            response = json_response({"error": error}, self.status)
        else:
            status = self.legacy_status or self.status
            if isinstance(self.legacy_body, Text):
                response = text_response(status, self.legacy_body.text)
            else:
                body = self.legacy_body
                if body is _UNSET:
                    body = {"error": self.code}
                    if self.details is not None:
                        body["details"] = self.details
                response = json_response(body, status)
        response.headers.update(self.headers)
        return response


class Text:
    """Marks a legacy error body as plain text (the ancestor's ``Forbidden``)."""

    def __init__(self, text: str) -> None:
        self.text = text


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def text_response(status: int, text: str) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def html_response(status: int, title: str) -> Response:
    """An HTML error page, like a proxy or framework answers instead of the API."""
    page = (
        f"<!DOCTYPE html><html><head><title>{status} {title}</title></head>"
        f"<body><h1>{status} {title}</h1><p>app.zappway.ai</p></body></html>"
    )
    return Response(page, status=status, mimetype="text/html")


def ok(data: Any, *, status: int = 200, meta: dict[str, Any] | None = None) -> Response:
    """Answer success in the current profile's shape (legacy: bare body, 200 for creates)."""
    if current_store().legacy:
        return json_response(data, 200)
    body: dict[str, Any] = {"data": data}
    if meta is not None:
        body["meta"] = meta
    return json_response(body, status)


def unauthorized() -> ApiError:
    """The key failure: documented 401 JSON, legacy plain-text 403 ``Forbidden``."""
    return ApiError(
        401,
        "UNAUTHORIZED",
        "Invalid or expired API key.",
        legacy_status=403,
        legacy_body=Text("Forbidden"),
        headers={},
    )


def forbidden(message: str = "You do not have access to this resource.") -> ApiError:
    """Documented 403 JSON; legacy ``{"error": "UNAUTHORIZED"}`` with 403 (ApiError mapping)."""
    return ApiError(403, "FORBIDDEN", message, legacy_body={"error": "UNAUTHORIZED"})


def not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} not found.")


def bad_request(message: str, details: Any = None) -> ApiError:
    """Documented 400; legacy ``{"error": "error invalid request body", "details"}``."""
    legacy = {"error": "error invalid request body", "details": details or {"message": message}}
    return ApiError(400, "BAD_REQUEST", message, details=details, legacy_body=legacy)
