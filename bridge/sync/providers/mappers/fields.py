"""The data-driven mapper: a `FieldMap` says where everything is (Sanity, SW, generic).

When the mapped text field is empty, the usual names beside the document's id are tried
(`text`, `body`, `content`, `description`: a Sanity projection of `body`, a producer's
`data.content`) before giving up; a document still without text carries a hint naming the
fields that were present (keys only), which becomes its dead letter's reason.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.sync.providers.errors import MappingError
from bridge.sync.providers.generic import FieldMap
from bridge.sync.providers.mapping import Change, Event
from bridge.sync.providers.text import body_text
from bridge.sync.providers.values import (
    as_dict,
    id_str,
    iso,
    lookup,
    matches,
    metadata,
    time_ms,
    tombstone_version,
    version,
)


def map_fields(ev: Event) -> list[Change]:
    """Map a payload through the resolved field map; without one there is nothing to read.

    Raises:
        MappingError: `not-configured` without a field map, `missing-id` without an id.
    """
    fm = ev.fields
    if fm is None:
        raise MappingError("not-configured")
    if matches(ev.name, fm.ignore_events):
        return []
    deleting = matches(ev.name, fm.delete_events)
    if not deleting and ev.name is not None and not matches(ev.name, fm.upsert_events):
        return []
    cms_id = id_str(_get(ev, fm.id))
    if cms_id is None:
        raise MappingError("missing-id")
    if matches(cms_id, fm.ignore_ids):
        return []
    updated = time_ms(_get(ev, fm.updated), fm.updated_unit)
    if deleting:
        at = time_ms(_get(ev, fm.event_time), "auto")
        return [Change("delete", cms_id, tombstone_version(at, ev.received_at, updated))]
    title, url = _get(ev, fm.title), _get(ev, fm.url)
    text = body_text(_get(ev, fm.text)) or _fallback_text(ev, fm)
    return [
        Change(
            "upsert",
            cms_id,
            version(updated if updated is not None else _received_ms(ev)),
            title=title if isinstance(title, str) else None,
            text=text,
            url=url if isinstance(url, str) else None,
            updated_at=iso(updated),
            metadata=metadata({name: _get(ev, source) for name, source in fm.metadata}),
            no_text=None if text else no_text_reason(ev, fm),
        )
    ]


TEXT_NAMES = ("text", "body", "content", "description")
# Names that hold ids, times, links or machinery, never the text a reader searches for.
NOT_TEXT = frozenset({"id", "_id", "_type", "_rev", "_key", "_createdAt", "_updatedAt", "type",
                      "title", "name", "slug", "url", "operation", "timestamp", "created_at",
                      "updated_at", "createdAt", "updatedAt", "status"})  # fmt: skip
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
MAX_REASON = 240


def _document_prefix(fm: FieldMap) -> str | None:
    """Where the document's own fields are: beside its id (`data.id` -> `data.`), when the id
    is a plain dotted path; None for a header or a JMESPath expression."""
    if not _DOTTED.fullmatch(fm.id):
        return None
    parent, _, _ = fm.id.rpartition(".")
    return f"{parent}." if parent else ""


def _fallback_text(ev: Event, fm: FieldMap) -> str | None:
    prefix = _document_prefix(fm)
    if prefix is None:
        return None
    for name in TEXT_NAMES:
        if f"{prefix}{name}" != fm.text:
            found = body_text(_get(ev, f"{prefix}{name}"))
            if found:
                return found
    return None


def no_text_reason(ev: Event, fm: FieldMap) -> str:
    """Say which field to map, with the keys (never the values) the document had."""
    prefix = _document_prefix(fm) or ""
    document = as_dict(_get(ev, prefix.rstrip(".")) if prefix else ev.payload)
    keys = [str(k) for k in document]
    guess = next(
        (k for k in keys if k not in NOT_TEXT and _DOTTED.fullmatch(k) and _texty(document[k])),
        None,
    )
    example = f"{prefix}{guess or 'body'}"
    if len(example) > 60:  # a very long key would crowd out the rest: name the usual one
        example = f"{prefix}body"[:60]
    reason = (
        "no text to index: set the source's mapping.text to the field holding the text, "
        f'e.g. {{"text": "{example}"}}; fields present: '
    )
    listed = ", ".join(keys) or "none"
    if len(reason) + len(listed) > MAX_REASON:
        room = max(0, MAX_REASON - len(reason) - 2)
        cut = listed[:room]
        listed = (cut.rsplit(", ", 1)[0] if ", " in cut else cut) + " …"
    return (reason + listed)[:MAX_REASON]


def _texty(value: Any) -> bool:
    return (isinstance(value, str) and " " in value.strip()) or (
        isinstance(value, list | dict) and body_text(value) is not None
    )


def _get(ev: Event, source: str | None) -> object:
    return None if source is None else lookup(source, ev.payload, ev.headers)


def _received_ms(ev: Event) -> int | None:
    return int(ev.received_at * 1000) if ev.received_at is not None else None


SANITY_FIELDS = FieldMap(
    id="_id",
    title="title",
    text="text",
    url="url",
    updated="_updatedAt",
    updated_unit="iso",
    event="operation",
    delete_events=("delete",),
    upsert_events=("create", "update"),
    ignore_ids=("drafts.*", "versions.*"),
    metadata=(("type", "_type"), ("rev", "_rev"), ("slug", "slug")),
)
"""The projection we ask Sanity users for: `{_id, _type, _rev, _updatedAt, title,
"text": pt::text(body), "url": ..., "slug": slug.current, "operation": delta::operation()}`."""

STANDARD_WEBHOOKS_FIELDS = FieldMap(
    id="data.id",
    title="data.title",
    text="data.text || data.body || data.content",
    url="data.url",
    updated="data.updated_at || data.updatedAt || timestamp",
    event="type",
    event_time="timestamp",
    delete_events=("*.deleted", "*.unpublished", "*.archived"),
)
"""Producer-defined fields; this default reads the common `{type, timestamp, data}` envelope."""
