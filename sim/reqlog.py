"""The request log behind ``GET /__admin/requests``: what the bridge sent, keys masked.

The raw key is never stored: only a 12-hex SHA-256 prefix (to tell keys apart) and its
last four characters (what the upstream dashboard would show).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

BODY_LIMIT = 10 * 1024
_SENSITIVE_HEADERS = {"authorization", "cookie", "x-api-key"}


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def loggable_body(raw: bytes) -> Any:
    """Return parsed JSON when the body is small JSON, else text cut at 10 KB."""
    if not raw:
        return None
    text = raw[:BODY_LIMIT].decode("utf-8", errors="replace")
    if len(raw) <= BODY_LIMIT:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def masked_headers(headers: dict[str, str]) -> dict[str, str]:
    """Copy headers with credentials reduced to their last four characters."""
    masked = {}
    for name, value in headers.items():
        if name.lower() in _SENSITIVE_HEADERS:
            value = f"<redacted …{value[-4:]}>" if len(value) > 8 else "<redacted>"
        masked[name] = value
    return masked


class RequestLog:
    """Append-only list of request records with increasing ``seq``; callers hold the lock."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._seq = 0

    def clear(self) -> None:
        """Drop the entries but keep counting, so ``since`` cursors stay valid."""
        self.entries.clear()

    def reset(self) -> None:
        self.entries.clear()
        self._seq = 0

    def add(self, record: dict[str, Any]) -> None:
        self._seq += 1
        self.entries.append({"seq": self._seq, **record})

    def since(self, seq: int) -> list[dict[str, Any]]:
        return [entry for entry in self.entries if entry["seq"] > seq]
