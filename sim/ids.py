"""Seeded, cuid-like identifiers so a run with the same seed mints the same ids.

Real cuids start with ``c`` and a timestamp, so they sort roughly by creation; ours use
a counter in the same place: 25 characters, ``c`` + 8 counter digits + 16 random ones.
"""

from __future__ import annotations

import random

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, "0")[-width:]


class IdFactory:
    """Mint ids and opaque API keys from one seed; not thread-safe (callers hold the store lock)."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        self._counter = 0
        self._rng = random.Random(self._seed)
        self._key_rng = random.Random(self._seed ^ 0x5EED)

    def new_id(self) -> str:
        self._counter += 1
        tail = "".join(self._rng.choice(_ALPHABET) for _ in range(16))
        return "c" + _base36(self._counter, 8) + tail

    def new_key(self) -> str:
        """Return an opaque key shaped like ``zw_live_<32 hex>``."""
        return "zw_live_" + f"{self._key_rng.getrandbits(128):032x}"
