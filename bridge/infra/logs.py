"""Logging: one event per line on stdout, with a last-line filter that masks credentials.

Code never passes secrets to a logger; the filter is defence in depth for what libraries log
(e.g. a URL or header echoed in an exception message).
"""

from __future__ import annotations

import logging
import sys

from bridge.infra.redact import redact


class RedactSecrets(logging.Filter):
    """Rewrite the formatted message so credential-shaped strings never reach the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
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
