"""Fixed one-minute windows per API key, as the documented contract describes.

The window is aligned on the simulator clock's minute, so ``Retry-After`` is the whole
seconds left until that minute ends (at least 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOW_S = 60


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int


class FixedWindowLimiter:
    """Count requests per key per window; callers hold the store lock."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}

    def reset(self) -> None:
        self._counts.clear()

    def hit(self, key: str, limit: int, now: float) -> Verdict:
        """Count one request (rejected ones too) and say whether it fits in the window."""
        window = int(now // WINDOW_S)
        seen_window, count = self._counts.get(key, (window, 0))
        count = count + 1 if seen_window == window else 1
        self._counts[key] = (window, count)
        retry_after = max(1, math.ceil((window + 1) * WINDOW_S - now))
        return Verdict(count <= limit, limit, max(0, limit - count), retry_after)
