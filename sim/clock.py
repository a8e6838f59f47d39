"""The simulator's sense of time: a base clock plus an offset tests can move.

Everything time-dependent (rate-limit windows, indexing progress, quota months, fault
``until``) reads this clock, so a test can jump a minute ahead instead of sleeping.
Real sleeps (latency, stalls) still use wall time, because the client's timeouts do.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Anything with ``now()`` returning epoch seconds."""

    def now(self) -> float: ...


class _WallClock:
    def now(self) -> float:
        return time.time()


class VirtualClock:
    """Wrap a base clock (wall time by default) and add an advanceable offset."""

    def __init__(self, base: Clock | None = None) -> None:
        self._base: Clock = base if base is not None else _WallClock()
        self.offset = 0.0

    def now(self) -> float:
        return self._base.now() + self.offset

    def advance(self, seconds: float) -> float:
        """Move virtual time forward (or back, with a negative value); return the new now."""
        self.offset += seconds
        return self.now()

    def set(self, epoch: float) -> float:
        """Jump virtual time to ``epoch``; return the new now."""
        self.offset = epoch - self._base.now()
        return self.now()

    def reset(self) -> None:
        self.offset = 0.0


def iso(epoch: float) -> str:
    """Render epoch seconds like JavaScript's ``toISOString`` (milliseconds, ``Z``)."""
    stamp = datetime.fromtimestamp(epoch, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> float:
    """Parse an ISO 8601 date or datetime (naive means UTC) into epoch seconds.

    Raises:
        ValueError: when ``value`` is not ISO 8601.
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def month_of(epoch: float) -> str:
    """Return ``YYYY-MM`` for quota bookkeeping."""
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m")
