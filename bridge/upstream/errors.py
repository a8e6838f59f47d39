"""The upstream exception tree and the one place that turns a ZappWay response into an error.

    UpstreamError                      base; `status_code` is what we answer, `code` a slug
    ├── UpstreamUnavailable      503   DNS failure, refused connection (nothing sent)
    │   └── UpstreamTimeout      504   no answer within the read timeout
    ├── UpstreamProtocolError    502   a 2xx whose body is not the JSON we expect
    └── UpstreamResponseError          an error status; carries `upstream_status`
        ├── UpstreamAuthError    401   key missing, invalid or revoked (401, or legacy 403)
        ├── UpstreamForbidden    403   valid key, but not allowed (role, other org, plan tier)
        ├── UpstreamQuotaExceeded 402  monthly plan quota used up (legacy USAGE_LIMIT)
        ├── UpstreamNotFound     404   resource missing (also legacy `null` bodies, 500 "Not found")
        ├── UpstreamRejected     422   upstream refused the input (400); `fields` names the culprits
        ├── UpstreamPayloadTooLarge 413  body over the upstream cap; callers split and retry
        ├── UpstreamRateLimited  429   `retry_after` seconds (None when the upstream sent none)
        └── UpstreamServerError  502   5xx, HTML pages, edge timeouts (524), connection lost
                                       after sending (may have run: retried if idempotent)

Messages never quote more than 250 characters of an upstream body, and never the key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from bridge.infra.backoff import parse_retry_after
from bridge.infra.errors import MAX_MESSAGE, BridgeError, clip
from bridge.infra.redact import redact
from bridge.upstream.wire import Answer


class UpstreamError(BridgeError):
    """Raised for any failure talking to ZappWay; subclasses say which."""

    status_code = 502
    code = "upstream_error"
    default_message = "ZappWay could not be reached or answered unexpectedly"


class UpstreamUnavailable(UpstreamError):
    """Raised when no connection to ZappWay could be made (request not sent)."""

    status_code = 503
    code = "upstream_unavailable"
    default_message = "ZappWay is unreachable; try again shortly"


class UpstreamTimeout(UpstreamUnavailable):
    """Raised when ZappWay did not answer within the read timeout (request may have run)."""

    status_code = 504
    code = "upstream_timeout"
    default_message = "ZappWay did not answer in time"


class UpstreamProtocolError(UpstreamError):
    """Raised when a success status carries a body the bridge cannot read."""

    status_code = 502
    code = "upstream_bad_response"
    default_message = "ZappWay sent a response the bridge could not read"


class UpstreamResponseError(UpstreamError):
    """Raised for an error status; `upstream_status` keeps the original code."""

    def __init__(self, message: str | None = None, *, upstream_status: int = 0) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status

    def details(self) -> dict[str, Any]:
        return {"upstream_status": self.upstream_status} if self.upstream_status else {}


class UpstreamAuthError(UpstreamResponseError):
    """Raised when ZappWay rejects the stored key (401, or the legacy 403 on strict routes)."""

    status_code = 401
    code = "upstream_key_rejected"
    default_message = "ZappWay rejected the stored API key: it may have been revoked; rotate it"


class UpstreamForbidden(UpstreamResponseError):
    """Raised when the key is valid but may not touch this resource."""

    status_code = 403
    code = "upstream_forbidden"
    default_message = "ZappWay refused access to this resource"


class UpstreamQuotaExceeded(UpstreamResponseError):
    """Raised when the organization's monthly ZappWay quota is used up (not retryable)."""

    status_code = 402
    code = "upstream_quota_exceeded"
    default_message = "ZappWay plan quota exhausted; upgrade the plan or wait for the next cycle"


class UpstreamNotFound(UpstreamResponseError):
    """Raised when the requested resource does not exist upstream."""

    status_code = 404
    code = "upstream_not_found"
    default_message = "Not found on ZappWay"


class UpstreamRejected(UpstreamResponseError):
    """Raised when ZappWay refuses the input; `fields` lists the offending field names."""

    status_code = 422
    code = "upstream_rejected_input"
    default_message = "ZappWay rejected the request parameters"

    def __init__(
        self,
        message: str | None = None,
        *,
        upstream_status: int = 400,
        fields: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, upstream_status=upstream_status)
        self.fields = fields

    def details(self) -> dict[str, Any]:
        fields = {"fields": list(self.fields)} if self.fields else {}
        return {**super().details(), **fields}


class UpstreamPayloadTooLarge(UpstreamResponseError):
    """Raised on 413: the caller should split the batch and retry."""

    status_code = 413
    code = "upstream_payload_too_large"
    default_message = "The request was too large for ZappWay"


class UpstreamRateLimited(UpstreamResponseError):
    """Raised on 429 (or by the bridge's own per-key limiter); `retry_after` in seconds."""

    status_code = 429
    code = "rate_limited"
    default_message = "ZappWay rate limit reached"

    def __init__(
        self,
        message: str | None = None,
        *,
        upstream_status: int = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, upstream_status=upstream_status)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """Whole seconds for the Retry-After we send (at least 1, even when upstream sent none)."""
        return str(max(1, math.ceil(self.retry_after or 1)))

    def headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after_header}


class UpstreamServerError(UpstreamResponseError):
    """Raised on 5xx, HTML error pages and edge timeouts."""

    status_code = 502
    code = "upstream_server_error"
    default_message = "ZappWay had an internal error"


def error_from_response(
    response: Answer, sent_secrets: Sequence[str] = ()
) -> UpstreamResponseError:
    """Map an error response (either profile, JSON or not) to the matching exception.

    ZappWay's own message is passed on (it says what to fix), but first any quote of the
    `sent_secrets` (the key the call sent) is masked: the message travels on to the caller, a
    job's record, a source's events and the log.
    """
    status = response.status_code
    _code, message, fields = _read_error_body(response, sent_secrets)
    if status == 401:
        return UpstreamAuthError(upstream_status=status)
    if status == 403:
        return UpstreamForbidden(message or None, upstream_status=status)
    if status == 402:
        return UpstreamQuotaExceeded(upstream_status=status)
    if status in (404, 410):
        return UpstreamNotFound(message or None, upstream_status=status)
    if status == 413:
        return UpstreamPayloadTooLarge(upstream_status=status)
    if status == 429:
        return UpstreamRateLimited(
            upstream_status=status,
            retry_after=parse_retry_after(response.header("Retry-After")),
        )
    if status in (400, 422):
        detail = f"ZappWay rejected the request: {message}" if message else None
        return UpstreamRejected(detail, upstream_status=status, fields=fields)
    if status == 500 and message.lower() in ("not found", "not_found"):
        return UpstreamNotFound(upstream_status=status)  # legacy: a missing datastore
    if status == 500 and message.lower() == "unauthorized":
        return UpstreamForbidden(upstream_status=status)  # legacy: another org's document
    if 400 <= status < 500:
        return UpstreamRejected(upstream_status=status)
    suffix = f" (HTTP {status})"
    return UpstreamServerError(UpstreamServerError.default_message + suffix, upstream_status=status)


def is_legacy_auth_denial(response: Answer) -> bool:
    """Tell whether a 403 looks like the legacy key check (plain `Forbidden` or `UNAUTHORIZED`)."""
    code, message, _ = _read_error_body(response)
    return code.upper() == "UNAUTHORIZED" or message.strip().lower() == "forbidden"


def _read_error_body(
    response: Answer, sent_secrets: Sequence[str] = ()
) -> tuple[str, str, tuple[str, ...]]:
    """Return (code, message, field names) from any of the upstream's error shapes, the message
    with credentials and quotes of `sent_secrets` masked."""

    def text_of(message: str) -> str:
        # Only what `clip` may keep is masked, with any quote straddling its end whole:
        # masking a multi-megabyte body word by word would hold the worker for seconds.
        flat = " ".join(message.split())  # as `clip` does
        keep = MAX_MESSAGE + max((len(secret) for secret in sent_secrets), default=0)
        return clip(redact(flat[:keep], sent_secrets))

    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        text = response.text.strip()
        looks_html = text.startswith("<") or "html" in (response.header("content-type") or "")
        return "", "" if looks_html else text_of(text), ()
    if not isinstance(body, dict):
        return "", "", ()
    error = body.get("error")
    fields = _field_names(body.get("details"))
    if isinstance(error, dict):
        return str(error.get("code") or ""), text_of(str(error.get("message") or "")), fields
    if isinstance(error, str):
        is_code = error.isupper() and " " not in error
        return (error, "", fields) if is_code else ("", text_of(error), fields)
    return "", text_of(str(body.get("message") or "")), fields


def _field_names(details: Any) -> tuple[str, ...]:
    """Extract field names from a validation `details` block, never its free text."""
    if isinstance(details, dict):
        names = details.get("fieldErrors", details)
        if isinstance(names, dict):
            return tuple(str(name) for name in names)[:10]
    if isinstance(details, list):
        found = [
            str(item.get("path") or item.get("field")) for item in details if isinstance(item, dict)
        ]
        return tuple(name for name in found if name and name != "None")[:10]
    return ()
