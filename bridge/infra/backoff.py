"""When to try again: one retry policy for every schedule the bridge keeps, and Retry-After.

Five things retry: upstream calls (exponential, full jitter), hook deliveries and job callbacks
(fixed schedules from settings), CMS sync batches (a fixed schedule, one jitter per failed call
so a batch stays together) and the sync's pause after a 429. Each is a `Backoff`; what differs is
data (the schedule, the jitter, the cap on what a server may ask for), never the arithmetic.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """A retry schedule: the wait before retry `attempt` (0-based), or None once it is spent.

    With `schedule`, retry n waits `schedule[n]`; without, it waits up to `base * 2**n` capped at
    `cap` for at most `retries` retries. `jitter` spreads waits by ± that fraction (a fixed
    schedule) or draws the whole wait uniformly below its bound (`full_jitter`, the exponential
    form, which scatters clients that failed together). A server's Retry-After is a floor when
    it is within `max_retry_after`, and ignored beyond it.
    """

    schedule: tuple[float, ...] = ()
    base: float = 0.5
    cap: float = 60.0
    retries: int = 0
    jitter: float = 0.0
    full_jitter: bool = False
    max_retry_after: float = 3600.0

    @classmethod
    def exponential(cls, retries: int, base: float = 0.5, cap: float = 60.0) -> Backoff:
        return cls(base=base, cap=cap, retries=retries, full_jitter=True)

    @classmethod
    def fixed(cls, schedule: tuple[float, ...], jitter: float = 0.0) -> Backoff:
        return cls(schedule=tuple(schedule), jitter=jitter)

    @property
    def attempts(self) -> int:
        """How many retries the policy allows."""
        return len(self.schedule) if self.schedule else self.retries

    def spread(self) -> float:
        """One jitter factor, for callers that apply the same one to several waits."""
        return random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311 (jitter, not crypto)

    def delay(
        self, attempt: int, retry_after: float | None = None, factor: float | None = None
    ) -> float | None:
        """Seconds before retry `attempt`, or None when the policy has no such retry.

        `factor` replaces this call's jitter draw (see `spread`).
        """
        if attempt < 0 or attempt >= self.attempts:
            return None
        if self.schedule:
            wait = self.schedule[attempt] * (self.spread() if factor is None else factor)
        else:
            bound = min(self.cap, self.base * 2**attempt)
            wait = random.uniform(0, bound) if self.full_jitter else bound  # noqa: S311
        return max(wait, self.honoured(retry_after))

    def honoured(self, retry_after: float | None) -> float:
        """The part of a server's Retry-After this policy honours (0 when absent or absurd)."""
        if retry_after is None or not 0 <= retry_after <= self.max_retry_after:
            return 0.0
        return retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Read Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
