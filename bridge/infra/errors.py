"""The base of every error the bridge answers with: it carries its own HTTP status.

    BridgeError                 status_code, code, message, headers(), details()
    ├── InvalidInput      422   a field the caller must fix; `fields` names it
    ├── NotFound          404   no such thing for this caller (another tenant's id included)
    ├── Conflict          409   busy or in progress: retry shortly (Retry-After)
    ├── ClientError       4xx   any other refusal whose status and code the raiser picks
    ├── StorageUnavailable 503  the database dropped or refused the connection: retry shortly
    └── InternalError     500   our own bug, or a state only an operator can fix

Domain and upstream errors subclass these (`bridge.upstream.errors`, the connections, runs,
hooks and sync errors) with a class-level `status_code` and `code`, so the web layer renders any
of them without knowing which module raised it, and background code (a job's stored failure)
describes them the same way without the web layer. Messages are clipped to `MAX_MESSAGE`
characters and never carry a secret.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from marshmallow import ValidationError

MAX_MESSAGE = 250


def clip(message: str) -> str:
    """One line of at most `MAX_MESSAGE` characters."""
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


class BridgeError(Exception):
    """Raised for any failure the caller is told about; subclasses say which."""

    # Class-level defaults; `ClientError` instances set their own.
    status_code: int = 500
    code: str = "internal_error"
    default_message: ClassVar[str] = "Internal error; it has been logged"

    def __init__(self, message: str | None = None) -> None:
        self.message = clip(message or self.default_message)
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """Response headers this error needs (Retry-After, WWW-Authenticate)."""
        return {}

    def details(self) -> dict[str, Any]:
        """Extra members of the `error` object (`fields`, `upstream_status`, `job_id`...)."""
        return {}

    def body(self) -> dict[str, Any]:
        """The JSON body: `{"error": {"code", "message", ...details}}`."""
        return {"error": {"code": self.code, "message": self.message, **self.details()}}


class InvalidInput(BridgeError):
    """Raised when the caller's input is wrong in a way a schema could not say; names fields."""

    status_code = 422
    code = "invalid_input"
    default_message = "Invalid input"

    def __init__(self, message: str | None = None, *, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.fields = list(fields)

    def details(self) -> dict[str, Any]:
        return {"fields": self.fields} if self.fields else {}

    @classmethod
    def from_validation(cls, exc: ValidationError) -> InvalidInput:
        """One sentence naming every field marshmallow refused, and the field list."""
        message, names = validation_message(exc.messages)
        return cls(message, fields=names)


class NotFound(BridgeError):
    """Raised when the thing asked for does not exist for this caller."""

    status_code = 404
    code = "not_found"
    default_message = "Not found"


class Conflict(BridgeError):
    """Raised when the target is busy (another writer, a run in progress): retry shortly."""

    status_code = 409
    code = "conflict"
    default_message = "Busy; retry shortly"
    retry_after: ClassVar[int] = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ClientError(BridgeError):
    """Raised for a refusal whose status and code the raiser picks (400, 401, 403, 410...)."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self, status: int, code: str, message: str, *, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status
        self.code = code
        self._details = dict(details or {})

    def details(self) -> dict[str, Any]:
        return dict(self._details)


class StorageUnavailable(BridgeError):
    """Answered (`storage.unavailable`) when the database cut or refused the connection, as
    a PostgreSQL restart or `pg_terminate_backend` does. The pool drops the dead connection, so
    a retry a moment later gets a fresh one; the request's transaction did not commit, and
    what callers retry (webhooks, Idempotency-Key actions) is deduplicated."""

    status_code = 503
    code = "storage_unavailable"
    default_message = "The bridge's database dropped the connection; retry shortly"
    retry_after: ClassVar[int] = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InternalError(BridgeError):
    """Raised for our own failures; the message says nothing about internals."""


def as_bridge_error(exc: BaseException) -> BridgeError:
    """The error as callers see it: itself, a 422 for marshmallow's, a 500 for anything else
    (the web layer first asks `storage.unavailable` whether the database cut the connection:
    this module stays free of SQLAlchemy, which actions may not import)."""
    if isinstance(exc, BridgeError):
        return exc
    if isinstance(exc, ValidationError):
        return InvalidInput.from_validation(exc)
    return InternalError()


def validation_message(messages: Any) -> tuple[str, list[str]]:
    """Flatten marshmallow messages into one sentence naming the fields, and the field list.

    A field is named by its path: `contact.email`, a list's item by its index
    (`documents.1.id`), and a problem with a nested object as a whole (marshmallow's `_schema`:
    "not an object") by the object's own name, `contact` rather than `contact._schema`.
    """
    problems = list(_problems(messages, ""))
    parts = [f"{name}: {problem}" for name, problem in problems]
    return "Invalid input: " + "; ".join(parts), [name for name, _ in problems]


def _problems(messages: Any, name: str) -> Iterator[tuple[str, str]]:
    """(path, first problem) for each field marshmallow refused."""
    if isinstance(messages, dict):
        for key, nested in messages.items():
            path = name if key == "_schema" else f"{name}.{key}" if name else str(key)
            yield from _problems(nested, path)
    elif isinstance(messages, list) and messages and not isinstance(messages[0], str):
        for nested in messages:
            yield from _problems(nested, name)
    else:
        first = messages[0] if isinstance(messages, list) and messages else messages
        yield name or "body", str(first)
