"""What each route is, declared beside its view: `/openapi.json` is built from these alone.

A view says what it takes and what it answers with `@endpoint(Endpoint(...))` (directly under the
route decorator); routes generated from the registry get theirs in their registration loop.
`bridge.spec.openapi` walks the app's URL map and reads them, so the document cannot list a
route that does not exist nor miss one that does (a test checks every rule is declared).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from marshmallow import Schema, fields

F = TypeVar("F", bound=Callable[..., Any])
ATTRIBUTE = "__endpoint__"

ERROR_TEXT = {
    400: "Malformed JSON",
    401: "Missing, malformed, unknown or revoked credentials, or ZappWay rejected the stored key",
    402: "ZappWay plan quota exhausted",
    403: "ZappWay refused access",
    404: "Not found",
    405: "Method not allowed",
    409: "Idempotency-Key still in progress, or the document is being written",
    410: "Gone: the inbound source was deleted or its connection revoked",
    413: "Body too large",
    422: "Invalid input (the message names the field)",
    429: "Rate limited: see Retry-After",
    502: "ZappWay failed",
    503: "ZappWay unreachable",
    504: "ZappWay too slow (actions: a job id to poll)",
}
# Each operation lists only the statuses it can answer: a body's 400 and 413 only where a body is
# read, 409 only where an Idempotency-Key or a document write can be in progress.
AUTHED_ERRORS = (400, 401, 402, 403, 404, 409, 413, 422, 429, 502, 503, 504)  # actions
READ_ERRORS = (401, 402, 403, 404, 422, 429, 502, 503, 504)  # GETs that read ZappWay
UNAUTHED_ERRORS = (400, 403, 413, 422, 429, 502, 503, 504)
UPSTREAM_ERRORS = (401, 402, 403, 429, 502, 503, 504)


class ErrorBody(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields_ = fields.List(fields.String(), data_key="fields")
    upstream_status = fields.Integer()
    job_id = fields.String()
    status_url = fields.String()


class ErrorEnvelope(Schema):
    error = fields.Nested(ErrorBody, required=True)


@dataclass(frozen=True)
class ResponseHeader:
    """A header a success answer carries: `required` when every such answer has it."""

    schema: Mapping[str, Any]
    description: str
    required: bool = True


@dataclass(frozen=True)
class Answer:
    """One success status: its body (a schema class, a JSON schema, or None for no body), its
    media type (JSON unless said otherwise: `/metrics` answers Prometheus text) and the response
    headers it carries."""

    schema: Any = None
    description: str = "OK"
    many: bool = False
    headers: Mapping[str, ResponseHeader] = field(default_factory=dict)
    media_type: str = "application/json"


@dataclass(frozen=True)
class Header:
    """A request header the route reads."""

    name: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})
    description: str = ""


@dataclass(frozen=True)
class Endpoint:
    """One operation: what it takes (body, query, headers) and what it answers."""

    summary: str
    answers: Mapping[int, Answer]
    errors: tuple[int, ...] = ()
    body: Any = None  # a schema class, or a JSON schema when the body is not ours to describe
    body_required: bool = True
    query: type[Schema] | None = None
    headers: tuple[Header, ...] = ()
    secured: bool = True
    admin: bool = False  # secured by the operator's admin token, not a connection token
    operation_id: str | None = None
    description: str | None = None
    # a path parameter's pattern (a regex), where the view refuses values outside it
    path_patterns: Mapping[str, str] = field(default_factory=dict)
    # An HTML page for people (the console), not an operation of the JSON API: it is declared
    # like every route, and left out of /openapi.json on purpose.
    html: bool = False


def page(summary: str) -> Endpoint:
    """The declaration of an HTML page (or a form post that answers one)."""
    return Endpoint(summary, {200: Answer(None, "An HTML page")}, secured=False, html=True)


def endpoint(spec: Endpoint) -> Callable[[F], F]:
    """Attach the declaration to a view (put it directly under the route decorator)."""

    def attach(view: F) -> F:
        setattr(view, ATTRIBUTE, spec)
        return view

    return attach


def endpoint_of(view: Callable[..., Any]) -> Endpoint | None:
    found = getattr(view, ATTRIBUTE, None)
    return found if isinstance(found, Endpoint) else None
