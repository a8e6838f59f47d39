"""Stripe and Payload CMS: senders that wrap the object in a typed event envelope."""

from __future__ import annotations

from bridge.sync.providers.errors import MappingError
from bridge.sync.providers.mapping import Change, Event
from bridge.sync.providers.text import body_text
from bridge.sync.providers.values import (
    as_dict,
    id_str,
    iso,
    metadata,
    time_ms,
    tombstone_version,
    version,
)


def map_stripe(ev: Event) -> list[Change]:
    """Map `product.*` events; a product updated to `active: false` is unpublished."""
    payload = as_dict(ev.payload)
    obj = as_dict(as_dict(payload.get("data")).get("object"))
    if ev.name not in ("product.created", "product.updated", "product.deleted"):
        return []
    cms_id = id_str(obj.get("id"))
    if cms_id is None:
        raise MappingError("missing-id")
    updated = time_ms(obj.get("updated"), "s")
    created = time_ms(payload.get("created"), "s")
    if ev.name == "product.deleted" or obj.get("active") is False:
        return [Change("delete", cms_id, tombstone_version(created, ev.received_at, updated))]
    return [
        Change(
            "upsert",
            cms_id,
            version(updated or created),
            title=obj.get("name"),
            text=body_text(obj.get("description")),
            url=obj.get("url"),
            updated_at=iso(updated),
            metadata=metadata({"livemode": payload.get("livemode")}),
        )
    ]


def map_payload(ev: Event) -> list[Change]:
    """Map the `document.*` events our Payload hook sends; draft saves are ignored."""
    payload = as_dict(ev.payload)
    data = as_dict(payload.get("data"))
    doc = as_dict(data.get("doc"))
    doc_id, collection = id_str(data.get("id")), data.get("collection")
    if not (ev.name or "").startswith("document."):
        return []
    if doc_id is None or not isinstance(collection, str):
        raise MappingError("missing-id")
    cms_id = f"{collection}:{doc_id}"
    updated = time_ms(doc.get("updatedAt"), "iso")
    if ev.name in ("document.unpublished", "document.deleted"):
        at = time_ms(payload.get("timestamp"), "iso")
        return [Change("delete", cms_id, tombstone_version(at, ev.received_at, updated))]
    if ev.name not in ("document.published", "document.updated") or doc.get("_status") == "draft":
        return []
    return [
        Change(
            "upsert",
            cms_id,
            version(updated),
            title=doc.get("title"),
            text=body_text(doc.get("contentText")),
            url=data.get("url"),
            updated_at=iso(updated),
            metadata=metadata({"collection": collection, "slug": doc.get("slug")}),
        )
    ]
