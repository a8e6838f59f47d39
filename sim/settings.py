"""The simulator's runtime switches, changed through ``POST /__admin/settings``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

_CHOICES: dict[str, tuple[str, ...]] = {
    "order": ("asc", "desc"),
    "unknown_conversation": ("create", "404"),
    "indexing_result": ("synched", "error", "usage_limit_reached"),
}
_OPTIONAL = {"quota_per_month", "max_documents_per_upsert"}


@dataclass
class Settings:
    """Switches; ``rate_limit_enabled`` follows the profile until set explicitly."""

    rate_limit_enabled: bool = True
    quota_enabled: bool = False
    quota_per_month: int | None = None  # None: the org plan's quota (free 100, pro 5000, ...)
    after_inclusive: bool = False
    order: str = "asc"
    unknown_conversation: str = "create"
    indexing_delay_s: float = 2.0
    indexing_result: str = "synched"
    max_documents_per_upsert: int | None = None
    max_body_bytes: int = 1024 * 1024
    edge_timeout_s: float = 100.0
    stream_chunk_chars: int = 16
    stream_chunk_delay_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def apply(self, changes: dict[str, Any]) -> None:
        """Validate every change first, then apply them all.

        Raises:
            ValueError: naming the first unknown key or badly typed value.
        """
        types = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in types:
                raise ValueError(f"unknown setting {name!r}")
            _check(name, str(types[name]), value)
        for name, value in changes.items():
            setattr(self, name, value)


def _check(name: str, declared: str, value: Any) -> None:
    if value is None and name in _OPTIONAL:
        return
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ValueError(f"{name} must be one of {', '.join(_CHOICES[name])}")
        return
    if declared.startswith("bool"):
        ok = isinstance(value, bool)
    elif declared.startswith("float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    else:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if not ok:
        raise ValueError(f"{name} has the wrong type or is negative")
