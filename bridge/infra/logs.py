"""Logging: one event per line on stdout, with a last-line filter that masks credentials.

Code never passes secrets to a logger; the filter is defence in depth for what libraries log
(e.g. a URL or header echoed in an exception message).
"""

from __future__ import annotations

import logging
import re
import sys

SECRET_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[^\s'\"]+"), r"\1<SECRET>"),
    (re.compile(r"zwb_[A-Za-z0-9_-]+"), "zwb_<SECRET>"),
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_<SECRET>"),
    (re.compile(r"(?i)(api[_-]?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1<SECRET>"),
)


class RedactSecrets(logging.Filter):
    """Rewrite the formatted message so credential-shaped strings never reach the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for pattern, replacement in SECRET_PATTERNS:
            message = pattern.sub(replacement, message)
        record.msg, record.args = message, None
        return True


def configure(level: str) -> None:
    """Install the stdout handler once per process (idempotent across app factories)."""
    root = logging.getLogger()
    if any(getattr(h, "_zwb", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactSecrets())
    handler._zwb = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
