"""The data-driven mapper: a `FieldMap` says where everything is (Sanity, SW, generic)."""

from __future__ import annotations

from bridge.sync.providers.errors import MappingError
from bridge.sync.providers.generic import FieldMap
from bridge.sync.providers.mapping import Change, Event
from bridge.sync.providers.text import body_text
from bridge.sync.providers.values import (
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
    return [
        Change(
            "upsert",
            cms_id,
            version(updated if updated is not None else _received_ms(ev)),
            title=title if isinstance(title, str) else None,
            text=body_text(_get(ev, fm.text)),
            url=url if isinstance(url, str) else None,
            updated_at=iso(updated),
            metadata=metadata({name: _get(ev, source) for name, source in fm.metadata}),
        )
    ]


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
