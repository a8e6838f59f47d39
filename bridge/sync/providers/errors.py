"""The two errors the inbound layer raises: one for authenticity, one for unusable payloads.

- `VerificationError`: the request is not provably from the configured sender.
  Carries a `reason` slug (a metric label) and the HTTP `status` to answer: 400 when a
  header is malformed or a companion header is missing, 401 when the signature, token or
  timestamp is wrong. The message is the slug only, so no header value or secret can leak
  into logs or response bodies through it.
- `MappingError`: a verified payload lacks what its provider always sends (for example an
  id). Ignored-by-design events (drafts, autosaves, other topics) are not errors; they map
  to an empty list.
"""

from __future__ import annotations


class VerificationError(Exception):
    """Raised when a webhook request fails verification; `status` is 400 or 401."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def __repr__(self) -> str:
        return f"VerificationError({self.reason!r}, {self.status})"


class MappingError(ValueError):
    """Raised when a verified payload lacks a field its provider always sends."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
