"""Shopify and Webflow: hosted platforms whose deletes carry only an id.

Shopify product ids exceed 2**53 and stay exact strings. Its deletes and Webflow's are
id-only, so the tombstone takes its time from the delivery (`X-Shopify-Triggered-At`,
`x-webflow-timestamp`), which retries keep unchanged.
"""

from __future__ import annotations

from typing import Any

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

_WEBFLOW_BODY_SLUGS = ("post-body", "body", "content", "rich-text", "description")


def map_shopify(ev: Event) -> list[Change]:
    """Map `products/*` topics; a product not active and published is unpublished."""
    payload = as_dict(ev.payload)
    if ev.name not in ("products/create", "products/update", "products/delete"):
        return []
    cms_id = id_str(payload.get("id"))
    if cms_id is None:
        raise MappingError("missing-id")
    updated = time_ms(payload.get("updated_at"), "iso")
    if ev.name == "products/delete":
        at = time_ms(ev.headers.get("x-shopify-triggered-at"), "iso")
        return [Change("delete", cms_id, tombstone_version(at, ev.received_at, None))]
    if payload.get("status", "active") != "active" or not payload.get("published_at"):
        if ev.name == "products/create":
            return []
        return [Change("delete", cms_id, tombstone_version(updated, ev.received_at, None))]
    shop, handle = ev.headers.get("x-shopify-shop-domain"), payload.get("handle")
    return [
        Change(
            "upsert",
            cms_id,
            version(updated),
            title=payload.get("title"),
            text=body_text(payload.get("body_html")),
            url=f"https://{shop}/products/{handle}" if shop and handle else None,
            updated_at=iso(updated),
            metadata=metadata(
                {
                    "handle": handle,
                    "vendor": payload.get("vendor"),
                    "product_type": payload.get("product_type"),
                }
            ),
        )
    ]


def map_webflow(ev: Event) -> list[Change]:
    """Map CMS item triggers; `collection_item_changed` on a draft is ignored."""
    payload = as_dict(ev.payload)
    body = as_dict(payload.get("payload"))
    listed = body.get("items")
    items: list[Any] = listed if isinstance(listed, list) else [body]
    changes: list[Change] = []
    for item in items:
        if isinstance(item, dict):
            changes.extend(_webflow_item(ev, item))
    return changes


def _webflow_item(ev: Event, item: dict[str, Any]) -> list[Change]:
    trigger = ev.name
    if trigger not in (
        "collection_item_published",
        "collection_item_changed",
        "collection_item_unpublished",
        "collection_item_deleted",
    ):
        return []
    cms_id = id_str(item.get("id"))
    if cms_id is None:
        raise MappingError("missing-id")
    if trigger in ("collection_item_unpublished", "collection_item_deleted") or item.get(
        "isArchived"
    ):
        at = time_ms(ev.headers.get("x-webflow-timestamp"), "ms")
        return [Change("delete", cms_id, tombstone_version(at, ev.received_at, None))]
    if item.get("isDraft"):
        return []
    fields = as_dict(item.get("fieldData"))
    updated = time_ms(item.get("lastUpdated") or item.get("lastPublished"), "iso")
    body = next((fields[s] for s in _WEBFLOW_BODY_SLUGS if isinstance(fields.get(s), str)), None)
    return [
        Change(
            "upsert",
            cms_id,
            version(updated),
            title=fields.get("name"),
            text=body_text(body),
            updated_at=iso(updated),
            metadata=metadata(
                {
                    "slug": fields.get("slug"),
                    "collection_id": item.get("collectionId"),
                    "locale_id": item.get("cmsLocaleId"),
                    "site_id": item.get("siteId"),
                }
            ),
        )
    ]
