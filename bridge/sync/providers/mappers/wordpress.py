"""WordPress (WP Webhooks plugin) and WooCommerce: PHP senders with full payloads.

WordPress sends no event name unless the trigger is configured with `X-WP-Webhook-Name`;
users give each trigger its own inbound URL instead (`/in/<token>/post_delete`), and without
either the post status decides: `publish` is live, `trash`, `draft`, `pending`, `private`
and the rest are not. A permanent delete is the one case the status cannot show (the plugin
sends the post as it was, often still `publish`), so it needs the trigger's name.
Both senders write GMT times without a zone marker; they are UTC.
"""

from __future__ import annotations

import re

from bridge.sync.providers.errors import MappingError
from bridge.sync.providers.mapping import Change, Event
from bridge.sync.providers.text import body_text, html_to_text
from bridge.sync.providers.values import (
    as_dict,
    id_str,
    iso,
    metadata,
    time_ms,
    tombstone_version,
    version,
)

# Trigger names (header or URL suffix) that mean the post is gone: post_delete, post_trash,
# and the names people give such triggers (`delete`, `post_deleted`, `trash_post`).
# A trigger name deletes when one of its words is one of these (`post_delete`, `trash_post`,
# `deleted_user`); a word merely containing one (`post_untrash`, a restore) does not.
_WP_DELETE_WORDS = frozenset(("delete", "deleted", "trash", "trashed"))
_WP_SKIP_TYPES = frozenset({"revision", "nav_menu_item", "customize_changeset", "wp_global_styles"})
_WP_SKIP_STATUSES = frozenset({"auto-draft", "inherit"})


def map_wordpress(ev: Event) -> list[Change]:
    """Map a WP Webhooks post payload; drafts created or saved never reach the store."""
    payload = as_dict(ev.payload)
    post = as_dict(payload.get("post"))
    cms_id = id_str(payload.get("post_id")) or id_str(post.get("ID"))
    if cms_id is None:
        raise MappingError("missing-id")
    status = post.get("post_status")
    if post.get("post_type") in _WP_SKIP_TYPES or status in _WP_SKIP_STATUSES:
        return []
    modified = time_ms(post.get("post_modified_gmt"), "iso")
    if _names_a_delete(ev.name) or status == "trash":
        return [Change("delete", cms_id, tombstone_version(None, ev.received_at, modified))]
    if status != "publish":
        # A post created as a draft is ignored; one updated away from publish is unpublished.
        # The tombstone sorts just after a publish saved in the same second: it came later.
        if ev.name == "post_create":
            return []
        if modified is not None:
            return [Change("delete", cms_id, version(modified, 1))]
        return [Change("delete", cms_id, tombstone_version(None, ev.received_at, None))]
    title = post.get("post_title")
    return [
        Change(
            "upsert",
            cms_id,
            version(modified),
            title=html_to_text(title) if isinstance(title, str) else None,
            text=body_text(post.get("post_content")),
            url=payload.get("post_permalink") or post.get("guid"),
            updated_at=iso(modified),
            metadata=metadata({"post_type": post.get("post_type"), "slug": post.get("post_name")}),
        )
    ]


def _names_a_delete(name: str | None) -> bool:
    return name is not None and not _WP_DELETE_WORDS.isdisjoint(
        re.split(r"[^a-z0-9]+", name.lower())
    )


def map_woocommerce(ev: Event) -> list[Change]:
    """Map `product.*` topics; other resources (orders, coupons) are ignored."""
    resource, _, action = (ev.name or "").partition(".")
    payload = as_dict(ev.payload)
    if resource != "product" or action not in ("created", "updated", "deleted", "restored"):
        return []
    cms_id = id_str(payload.get("id"))
    if cms_id is None:
        raise MappingError("missing-id")
    modified = time_ms(payload.get("date_modified_gmt"), "iso")
    if action == "deleted":
        return [Change("delete", cms_id, tombstone_version(None, ev.received_at, modified))]
    if payload.get("status") != "publish":
        if action == "created":
            return []
        return [Change("delete", cms_id, tombstone_version(modified, ev.received_at, None))]
    return [
        Change(
            "upsert",
            cms_id,
            version(modified),
            title=payload.get("name"),
            text=body_text(payload.get("description"))
            or body_text(payload.get("short_description")),
            url=payload.get("permalink"),
            updated_at=iso(modified),
            metadata=metadata({"sku": payload.get("sku"), "slug": payload.get("slug")}),
        )
    ]
