"""Per-source configuration for senders we have no preset for, and field maps as data.

`FieldMap` says where a payload keeps the document's fields. Each location is a JMESPath
expression (a plain dotted path such as `data.object.id` is one), or `header:<name>` to
read a request header. Event patterns are shell-style (`*.deleted`).

`GenericConfig` adds a signature recipe to a field map: the `generic_hmac` provider is
nothing but this record, so one source's sender is described without new code.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Literal

from bridge.sync.providers.schemes import (
    PLACEHOLDERS,
    Algorithm,
    Encoding,
    HmacScheme,
    Timestamp,
    Unit,
)

TimeUnit = Literal["auto", "iso", "s", "ms"]


@dataclass(frozen=True)
class FieldMap:
    """Where a payload keeps the document id, content, time and event name."""

    id: str = "id"
    title: str | None = "title"
    text: str | None = None
    url: str | None = None
    updated: str | None = None
    updated_unit: TimeUnit = "auto"
    event: str | None = None
    event_time: str | None = None
    delete_events: tuple[str, ...] = ()
    ignore_events: tuple[str, ...] = ()
    upsert_events: tuple[str, ...] = ("*",)
    ignore_ids: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GenericConfig:
    """A source's own HMAC recipe and field map (the `generic_hmac` provider).

    Raises:
        ValueError: at construction, when the content template names an unknown part or
            uses `{timestamp}` without a timestamp header.
    """

    header: str
    algorithm: Algorithm = "sha256"
    encoding: Encoding = "hex"
    prefix: str = ""
    content: str = "{body}"
    timestamp_header: str | None = None
    timestamp_unit: Unit = "s"
    window_s: float = 300.0
    mapping: FieldMap = field(default_factory=FieldMap)
    dedupe: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = {name for _, name, _, _ in string.Formatter().parse(self.content) if name}
        allowed = PLACEHOLDERS - {"id", "signed_headers"}
        if "body" not in names or not names <= allowed:
            raise ValueError(f"content must use {{body}} and only {sorted(allowed)}")
        if "timestamp" in names and self.timestamp_header is None:
            raise ValueError("{timestamp} in content needs timestamp_header")

    def scheme(self) -> HmacScheme:
        """Return the signature scheme this configuration describes."""
        stamp = None
        if self.timestamp_header is not None:
            stamp = Timestamp("header", self.timestamp_header, self.timestamp_unit, self.window_s)
        return HmacScheme(
            header=self.header,
            algorithm=self.algorithm,
            key="utf8",
            content=self.content,
            encoding=self.encoding,
            prefix=self.prefix,
            timestamp=stamp,
        )
