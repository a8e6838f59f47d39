"""Small pure helpers every mapper needs: lookups, ids, times and sortable versions.

Versions are strings that sort in time order across one provider's events:
`<epoch-ms, 15 digits>.<sequence, 9 digits>`. The sequence breaks ties within a
millisecond (Contentful's `sys.version`); tombstones use the event's own time, so a
delete beats every update older than it and loses to a later re-publish.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, cast

import jmespath

MAX_SAFE_FLOAT_INT = 2**53
Scalar = str | int | float | bool


# A JMESPath made only of plain field names (`post.post_modified_gmt`): most of the paths the
# providers and field maps read, several times per webhook.
_PLAIN_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


@functools.lru_cache(maxsize=512)
def _compiled(expression: str) -> Callable[[Any], Any]:
    """The search for one expression. A plain dotted path is walked directly, which returns
    what JMESPath returns (None as soon as a step is not an object or lacks the field) at a
    fraction of its cost; anything else goes through JMESPath."""
    if _PLAIN_PATH.fullmatch(expression):
        return functools.partial(_walk, tuple(expression.split(".")))
    return cast(Callable[[Any], Any], jmespath.compile(expression).search)


def _walk(keys: tuple[str, ...], value: Any) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def lookup(source: str, payload: Any, headers: Mapping[str, str]) -> Any:
    """Read `header:<name>` from `headers` (lower-case names) or a JMESPath from `payload`."""
    if source.startswith("header:"):
        return headers.get(source.removeprefix("header:").strip().lower())
    return _compiled(source)(payload)


def matches(value: str | None, patterns: Iterable[str]) -> bool:
    """Say whether `value` matches any shell-style pattern."""
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


def id_str(value: Any) -> str | None:
    """Return an id as an exact string; None for missing ids or floats that lost digits.

    Shopify ids exceed 2**53: Python's json keeps them as exact ints, but a float has
    already rounded them, so a large float is refused rather than guessed.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        safe = value.is_integer() and abs(value) < MAX_SAFE_FLOAT_INT
        return str(int(value)) if safe else None
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def time_ms(value: Any, unit: Literal["auto", "iso", "s", "ms"] = "auto") -> int | None:
    """Return epoch milliseconds from ISO 8601 text (no zone means UTC) or epoch s/ms."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        if unit == "iso":
            return None
        number = float(value)
        seconds = unit == "s" or (unit == "auto" and number < 1e11)
        return int(number * 1000) if seconds else int(number)
    if not isinstance(value, str) or unit in ("s", "ms"):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def iso(ms: int | None) -> str | None:
    """Return `ms` as ISO 8601 UTC with milliseconds and a `Z`."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def version(ms: int | None, seq: int = 0) -> str:
    """Return the sortable version string for a time and a tie-breaking sequence."""
    return f"{max(ms or 0, 0):015d}.{max(seq, 0):09d}"


def tombstone_version(event_ms: int | None, received_at: float | None, last_ms: int | None) -> str:
    """Version a delete by the event's time, else the receive time, else just after `last_ms`."""
    if event_ms is not None:
        return version(event_ms)
    if received_at is not None:
        return version(int(received_at * 1000))
    return version(last_ms, 999_999_999)


def as_dict(value: Any) -> dict[str, Any]:
    """Return `value` if it is a JSON object, else an empty one (payloads are untrusted)."""
    return value if isinstance(value, dict) else {}


def part_text(value: Any) -> str:
    """Render a dedupe-key part as stable text."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def metadata(items: Mapping[str, Any]) -> dict[str, Scalar]:
    """Keep the scalar, non-empty values of `items` (Change.metadata allows no nesting)."""
    return {k: v for k, v in items.items() if isinstance(v, Scalar) and v != ""}
