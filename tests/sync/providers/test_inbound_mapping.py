"""Payload mapping: each sample's expected changes, then one edge case per test."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest

from bridge.sync.providers.errors import MappingError
from bridge.sync.providers.mapping import Change, FetchSpec, delivery_key, event_name, map_event
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.values import version
from tests.sync.providers.builders import signed
from tests.sync.providers.samples import (
    CONTENTFUL_UNPUBLISH,
    GENERIC_B,
    GENERIC_B_CONFIG,
    NOW,
    SAMPLES,
)

RECEIVED = version(int(NOW * 1000))

# (op, cms_id, version, title, text, url, updated_at) of the first change of each sample.
EXPECTED = {
    "wordpress": (
        "upsert", "42", "001714557540000.000000000", "Café hours",
        "Café menus & opening hours\nMon\u2013Fri\nSat", "https://example.com/cafe-hours/",
        "2024-05-01T09:59:00.000Z",
    ),
    "woocommerce": (
        "upsert", "799", "001714557540000.000000000", "Ship Your Idea",
        "Pellentesque habitant morbi tristique.", "https://shop.example.com/product/ship-your-idea/",
        "2024-05-01T09:59:00.000Z",
    ),
    "contentful": (
        "upsert", "yadj1kx9rmg0:master:5KsDBWseXY6QegucYAoacS", "001714557570123.000000012",
        "Hello, Rich Text", "Intro\nRead the docs first.", None, "2024-05-01T09:59:30.123Z",
    ),
    "strapi": (
        "upsert", "api::article.article:h90lgohlzfpjf3bvan72mzll", "001714557599000.000000000",
        "Blocks demo", "Why\nBecause Strapi said so.\none\ntwo", None, "2024-05-01T09:59:59.000Z",
    ),
    "sanity": (
        "upsert", "post-123", "001714557480000.000000000", "Sanity post",
        "First block.\nSecond block.", "https://example.com/posts/sanity-post",
        "2024-05-01T09:58:00.000Z",
    ),
    "ghost": (
        "upsert", "6632f3b1e3c4a10001a1b2c3", "001714557540000.000000000", "Ghost & friends",
        "Hello Ghost", "https://blog.example.com/ghost-and-friends/", "2024-05-01T09:59:00.000Z",
    ),
    "shopify": (
        "upsert", "9007199254740993", "001714557540000.000000000", "Blue Shirt",
        "Soft cotton shirt.", "https://acme.myshopify.com/products/blue-shirt",
        "2024-05-01T09:59:00.000Z",
    ),
    "webflow": (
        "upsert", "6632f3b1e3c4a10001a1b2d4", "001714557580000.000000000", "Webflow item",
        "Title\nBody text.", None, "2024-05-01T09:59:40.000Z",
    ),
    "storyblok": ("upsert", "369689", RECEIVED, None, None, None, None),
    "directus": ("upsert", "articles:15", RECEIVED, "Directus title", None, None, None),
    "payload": (
        "upsert", "posts:6632f3b1e3c4a10001a1b2e5", "001714557598000.000000000", "Payload post",
        "Flattened Lexical text.", "https://example.com/posts/payload-post",
        "2024-05-01T09:59:58.000Z",
    ),
    "github": (
        "upsert", "acme/docs:guide/new.md", "001714557540000.000000000", "guide/new.md", None,
        "https://github.com/acme/docs/blob/main/guide/new.md", "2024-05-01T09:59:00.000Z",
    ),
    "stripe": (
        "upsert", "prod_Q1a2B3c4D5e6F7", "001714557589000.000000000", "Mug",
        "A very comfortable mug.", "https://example.com/mug", "2024-05-01T09:59:49.000Z",
    ),
    "standard_webhooks": (
        "upsert", "art_1", "001714557540000.000000000", "SW article", "Body text",
        "https://example.com/a/1", "2024-05-01T09:59:00.000Z",
    ),
    "generic_hmac": (
        "upsert", "c0ffee00-0000-4000-8000-000000000001", "001714557540000.000000000", "Generic A",
        "Alpha & omega", "https://cms.example.com/a", "2024-05-01T09:59:00.000Z",
    ),
}  # fmt: skip


def summary(change: Change) -> tuple[object, ...]:
    return (
        change.op,
        change.cms_id,
        change.version,
        change.title,
        change.text,
        change.url,
        change.updated_at,
    )


def mapped(
    key: str, body: bytes | str | None = None, headers: dict[str, str] | None = None, **kw: Any
) -> list[Change]:
    sample = SAMPLES[key]
    raw = sample.body if body is None else body
    payload = json.loads(raw)
    return map_event(
        PROVIDERS[key],
        payload,
        {**sample.headers, **(headers or {})},
        kw.pop("config", sample.config),
        received_at=kw.pop("received_at", NOW),
        route_event=kw.pop("route_event", None),
    )


def edited(key: str, **changes: object) -> str:
    """Return the sample's JSON with top-level keys replaced."""
    return json.dumps({**json.loads(SAMPLES[key].body), **changes})


def directus(action: str, fields: dict[str, object], **ids: object) -> str:
    """Return a Directus Flow body for an `articles` item event."""
    event = {"event": f"articles.items.{action}", "payload": fields, "collection": "articles"}
    return json.dumps({**event, **ids})


def test_every_provider_has_a_sample_and_an_expectation():
    """The sample set covers every provider record."""
    assert set(SAMPLES) == set(PROVIDERS) == set(EXPECTED)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_verified_sample_maps_to_the_expected_change(key):
    """Each verified sample maps to the document change its provider's docs imply."""
    request = signed(key)
    request.verify()
    changes = request.changes()
    assert summary(changes[0]) == EXPECTED[key]


def test_wordpress_php_escapes_are_decoded_once():
    """PHP's `\\/` and `\\uXXXX` escapes come out as plain characters in the mapped text."""
    change = mapped("wordpress")[0]
    assert "\\" not in (change.text or "") + (change.url or "")
    assert "wp:" not in (change.text or "")


def test_wordpress_time_without_zone_is_utc():
    """`post_modified_gmt` has no zone marker and is read as UTC."""
    assert mapped("wordpress")[0].updated_at == "2024-05-01T09:59:00.000Z"


def test_wordpress_draft_creation_is_ignored():
    """A post created as a draft produces no change."""
    post = {**json.loads(SAMPLES["wordpress"].body)["post"], "post_status": "draft"}
    body = edited("wordpress", post=post)
    assert mapped("wordpress", body, {"X-WP-Webhook-Name": "post_create"}) == []


def test_wordpress_update_to_draft_unpublishes():
    """A published post updated to draft becomes a tombstone at its modified time."""
    post = {**json.loads(SAMPLES["wordpress"].body)["post"], "post_status": "draft"}
    changes = mapped("wordpress", edited("wordpress", post=post))
    assert [(c.op, c.cms_id, c.version) for c in changes] == [
        ("delete", "42", "001714557540000.000000001")
    ]
    assert changes[0].version > EXPECTED["wordpress"][2]  # beats a publish of the same second


WP_NO_NAME = {"X-WP-Webhook-Name": ""}  # the plugin's default: no trigger name sent


@pytest.mark.parametrize("status", ["trash", "draft", "private", "pending"])
def test_wordpress_status_alone_unpublishes(status):
    """Without any trigger name, a post whose status is not `publish` is removed."""
    post = {**json.loads(SAMPLES["wordpress"].body)["post"], "post_status": status}
    changes = mapped("wordpress", edited("wordpress", post=post), WP_NO_NAME)
    assert [(c.op, c.cms_id) for c in changes] == [("delete", "42")]


@pytest.mark.parametrize("suffix", ["post_delete", "post_trash", "delete", "page.deleted"])
def test_wordpress_url_suffix_names_a_delete(suffix):
    """A still-`publish` post sent to the URL of a delete trigger (`/in/<token>/post_delete`)
    is deleted, versioned by the receive time; sent to the update URL it is upserted."""
    deleted = mapped("wordpress", headers=WP_NO_NAME, route_event=suffix)
    assert [(c.op, c.cms_id, c.version) for c in deleted] == [("delete", "42", RECEIVED)]
    updated = mapped("wordpress", headers=WP_NO_NAME, route_event="post_update")
    assert [(c.op, c.cms_id) for c in updated] == [("upsert", "42")]


@pytest.mark.parametrize("suffix", ["post_untrash", "post_restore", "undelete_check"])
def test_wordpress_trigger_merely_containing_a_delete_word_is_no_delete(suffix):
    """A restore trigger (`post_untrash`) names no delete: its still-published post is upserted
    (the words of the name count, not substrings)."""
    changes = mapped("wordpress", headers=WP_NO_NAME, route_event=suffix)
    assert [(c.op, c.cms_id) for c in changes] == [("upsert", "42")]


def test_no_text_reason_stays_short_with_very_long_field_names():
    """Keys of hundreds of characters still give a reason under the cap, keys only."""
    long_keys = {f"{'k' * 300}{i}": "x" for i in range(3)}
    (change,) = mapped("sanity", sanity_without_text(**long_keys))
    assert change.no_text is not None
    assert len(change.no_text) <= 240
    assert change.no_text.startswith("no text to index: set the source's mapping.text")


def test_event_header_wins_over_the_url_suffix():
    """The payload's own event name (here the configured header) is read before the suffix."""
    changes = mapped("wordpress", headers={"X-WP-Webhook-Name": "post_update"},
                     route_event="post_delete")  # fmt: skip
    assert [c.op for c in changes] == ["upsert"]


def test_url_suffix_is_part_of_the_delivery_key():
    """The same body sent to two trigger URLs is two deliveries; to one URL twice, one."""
    payload = json.loads(SAMPLES["wordpress"].body)
    key = functools.partial(delivery_key, PROVIDERS["wordpress"], payload, WP_NO_NAME)
    assert key(route_event="post_update") != key(route_event="post_delete")
    assert key(route_event="post_delete") == key(route_event="post_delete")
    assert key() not in (key(route_event="post_update"), None)


def test_wordpress_trash_deletes_at_the_receive_time():
    """`post_trash` deletes, versioned by the receive time so it beats the last update."""
    changes = mapped("wordpress", headers={"X-WP-Webhook-Name": "post_trash"})
    assert [(c.op, c.version) for c in changes] == [("delete", RECEIVED)]
    assert changes[0].version > EXPECTED["wordpress"][2]


def test_wordpress_revisions_are_ignored():
    """Revision posts (autosaves) are never documents."""
    post = {**json.loads(SAMPLES["wordpress"].body)["post"], "post_type": "revision"}
    assert mapped("wordpress", edited("wordpress", post=post)) == []


def test_woocommerce_delete_is_id_only():
    """`product.deleted` carries only the id and becomes a tombstone."""
    changes = mapped("woocommerce", '{"id":799}', {"X-WC-Webhook-Topic": "product.deleted"})
    assert [(c.op, c.cms_id, c.version) for c in changes] == [("delete", "799", RECEIVED)]


def test_woocommerce_other_resources_are_ignored():
    """Order topics are not content."""
    assert mapped("woocommerce", headers={"X-WC-Webhook-Topic": "order.created"}) == []


def test_woocommerce_product_moved_to_draft_unpublishes():
    """A product updated away from `publish` is removed."""
    changes = mapped("woocommerce", edited("woocommerce", status="draft"))
    assert [c.op for c in changes] == ["delete"]


def test_contentful_unpublish_is_a_tombstone_that_beats_the_publish():
    """An unpublished entry (DeletedEntry) becomes a tombstone newer than its last publish."""
    request = signed("contentful")
    topic = {"X-Contentful-Topic": "ContentManagement.Entry.unpublish"}
    tomb = mapped("contentful", CONTENTFUL_UNPUBLISH, topic)[0]
    assert (tomb.op, tomb.cms_id) == ("delete", request.changes()[0].cms_id)
    assert tomb.version == "001714557900000.000000000"
    assert tomb.version > request.changes()[0].version


@pytest.mark.parametrize("action", ["auto_save", "save", "create", "unarchive"])
def test_contentful_drafts_are_ignored(action):
    """Draft saves, autosaves and creations do not change published content."""
    topic = {"X-Contentful-Topic": f"ContentManagement.Entry.{action}"}
    assert mapped("contentful", headers=topic) == []


def test_contentful_archive_deletes():
    """Archiving an entry removes it."""
    topic = {"X-Contentful-Topic": "ContentManagement.Entry.archive"}
    assert [c.op for c in mapped("contentful", headers=topic)] == ["delete"]


def test_contentful_assets_are_ignored():
    """Asset events are not documents."""
    topic = {"X-Contentful-Topic": "ContentManagement.Asset.publish"}
    assert mapped("contentful", headers=topic) == []


def test_strapi_v5_draft_update_is_ignored():
    """An `entry.update` on a v5 draft (`publishedAt` null) produces no change."""
    entry = {**json.loads(SAMPLES["strapi"].body)["entry"], "publishedAt": None}
    body = edited("strapi", event="entry.update", entry=entry)
    assert mapped("strapi", body, {"X-Strapi-Event": "entry.update"}) == []


def test_strapi_unpublish_deletes_at_the_event_time():
    """`entry.unpublish` becomes a tombstone at the event's `createdAt`."""
    body = edited("strapi", event="entry.unpublish", createdAt="2024-05-01T10:10:00.000Z")
    changes = mapped("strapi", body, {"X-Strapi-Event": "entry.unpublish"})
    assert [(c.op, c.version) for c in changes] == [("delete", "001714558200000.000000000")]


def test_strapi_v4_numeric_ids_are_scoped_by_model():
    """A v4 entry without `documentId` is identified by its model and numeric id."""
    body = json.dumps(
        {"event": "entry.create", "model": "address", "entry": {"id": 3, "title": "HQ"}}
    )
    changes = mapped("strapi", body, {"X-Strapi-Event": "entry.create"})
    assert changes[0].cms_id == "address:3"


def test_strapi_media_events_are_ignored():
    """Media library events are not entries."""
    assert mapped("strapi", headers={"X-Strapi-Event": "media.create"}) == []


def test_sanity_drafts_are_ignored():
    """Documents under `drafts.` are unpublished edits and produce no change."""
    assert mapped("sanity", edited("sanity", _id="drafts.post-123")) == []


def test_sanity_delete_operation_deletes():
    """A projected `operation` of `delete` becomes a tombstone."""
    changes = mapped("sanity", edited("sanity", operation="delete"))
    assert [(c.op, c.cms_id, c.version) for c in changes] == [("delete", "post-123", RECEIVED)]


def test_ghost_draft_edit_is_ignored():
    """Editing a draft that was never published changes nothing public."""
    post = {"current": {"id": "p1", "status": "draft"}, "previous": {"title": "Old"}}
    assert mapped("ghost", json.dumps({"post": post})) == []


def test_ghost_unpublish_deletes():
    """A post moved from published to draft is removed at its update time."""
    post = {
        "current": {"id": "p1", "status": "draft", "updated_at": "2024-05-01T10:01:00.000Z"},
        "previous": {"status": "published"},
    }
    changes = mapped("ghost", json.dumps({"post": post}))
    assert [(c.op, c.cms_id, c.version) for c in changes] == [
        ("delete", "p1", "001714557660000.000000000")
    ]


def test_ghost_deleted_post_is_read_from_previous():
    """`post.deleted` has an empty `current`; the id comes from `previous`."""
    post = {"current": {}, "previous": {"id": "p9", "status": "published"}}
    assert [(c.op, c.cms_id) for c in mapped("ghost", json.dumps({"post": post}))] == [
        ("delete", "p9")
    ]


def test_ghost_pages_map_like_posts():
    """Page events use the `page` key and say so in metadata."""
    body = SAMPLES["ghost"].body.replace(b'{"post":', b'{"page":', 1)
    assert mapped("ghost", body)[0].metadata["kind"] == "page"


def test_shopify_ids_above_two_to_the_53_stay_exact():
    """A 64-bit Shopify id survives as the exact decimal string."""
    assert mapped("shopify")[0].cms_id == str(2**53 + 1)


def test_shopify_delete_is_versioned_by_the_trigger_time():
    """An id-only `products/delete` is a tombstone at `X-Shopify-Triggered-At`."""
    headers = {
        "X-Shopify-Topic": "products/delete",
        "X-Shopify-Triggered-At": "2024-05-01T10:02:00Z",
    }
    changes = mapped("shopify", '{"id":9007199254740993}', headers)
    assert [(c.op, c.cms_id, c.version) for c in changes] == [
        ("delete", "9007199254740993", "001714557720000.000000000")
    ]


@pytest.mark.parametrize("status", ["draft", "archived"])
def test_shopify_product_leaving_active_unpublishes(status):
    """A product updated to draft or archived is removed."""
    assert [c.op for c in mapped("shopify", edited("shopify", status=status))] == ["delete"]


def test_shopify_float_ids_are_refused():
    """An id that already went through a float cannot be trusted and is a mapping error."""
    with pytest.raises(MappingError):
        map_event(PROVIDERS["shopify"], {"id": 9007199254740993.0}, SAMPLES["shopify"].headers)


def test_webflow_changed_draft_is_ignored():
    """`collection_item_changed` on a draft item produces no change."""
    item = {"id": "i1", "isDraft": True, "fieldData": {"name": "Draft"}}
    body = json.dumps({"triggerType": "collection_item_changed", "payload": item})
    assert mapped("webflow", body) == []


def test_webflow_changed_live_item_upserts():
    """`collection_item_changed` on a non-draft item is an update."""
    item = {
        "id": "i1",
        "isDraft": False,
        "lastUpdated": "2024-05-01T09:00:00Z",
        "fieldData": {"name": "Live"},
    }
    body = json.dumps({"triggerType": "collection_item_changed", "payload": item})
    assert [(c.op, c.title) for c in mapped("webflow", body)] == [("upsert", "Live")]


def test_webflow_unpublish_is_id_only():
    """An id-only unpublish is a tombstone at the delivery's timestamp header."""
    body = json.dumps({"triggerType": "collection_item_unpublished", "payload": {"id": "i1"}})
    changes = mapped("webflow", body, {"x-webflow-timestamp": "1714557660000"})
    assert [(c.op, c.cms_id, c.version) for c in changes] == [
        ("delete", "i1", "001714557660000.000000000")
    ]


def test_storyblok_is_always_thin_with_a_cdn_fetch():
    """A published story is a thin upsert that names the CDN request to make."""
    change = mapped("storyblok")[0]
    assert change.thin
    assert change.fetch == FetchSpec(
        "https://api.storyblok.com/v2/cdn/stories/369689?token={token}"
    )
    assert change.fetch.render({"token": "pub tok"}) == (
        "https://api.storyblok.com/v2/cdn/stories/369689?token=pub%20tok",
        {},
    )


def test_storyblok_unpublish_deletes_without_fetch():
    """An unpublished story is a tombstone; nothing needs fetching."""
    changes = mapped("storyblok", edited("storyblok", action="unpublished"))
    assert [(c.op, c.fetch) for c in changes] == [("delete", None)]


def test_storyblok_other_actions_are_ignored():
    """Workflow and datasource notifications are not story content."""
    assert mapped("storyblok", edited("storyblok", action="entries_updated")) == []


def test_directus_delete_lists_every_key():
    """A Directus delete yields one tombstone per key."""
    body = json.dumps(
        {
            "event": "articles.items.delete",
            "payload": ["15", "16"],
            "keys": ["15", "16"],
            "collection": "articles",
        }
    )
    assert [(c.op, c.cms_id) for c in mapped("directus", body)] == [
        ("delete", "articles:15"),
        ("delete", "articles:16"),
    ]


def test_directus_update_without_status_is_a_thin_fetch():
    """An update carrying only changed fields is thin and fetched with the static token."""
    body = directus("update", {"title": "T"}, keys=[15])
    change = mapped("directus", body)[0]
    assert change.thin
    assert change.fetch is not None
    assert change.fetch.render({"base_url": "https://cms.example.com", "token": "tok"}) == (
        "https://cms.example.com/items/articles/15",
        {"Authorization": "Bearer tok"},
    )


def test_directus_status_leaving_published_unpublishes():
    """An update that sets a non-published status removes the item."""
    body = directus("update", {"status": "draft"}, keys=["15"])
    assert [c.op for c in mapped("directus", body)] == ["delete"]


def test_directus_draft_creation_is_ignored():
    """An item created as a draft produces no change."""
    body = directus("create", {"status": "draft"}, key=16)
    assert mapped("directus", body) == []


def test_payload_draft_saves_are_ignored():
    """A `document.updated` for a draft version produces no change."""
    body = SAMPLES["payload"].body.replace(
        b'"type":"document.published"', b'"type":"document.updated"'
    )
    body = body.replace(b'"_status":"published"', b'"_status":"draft"')
    assert mapped("payload", body) == []


def test_payload_delete_is_versioned_by_the_event_timestamp():
    """`document.deleted` becomes a tombstone at the body's `timestamp`."""
    body = SAMPLES["payload"].body.replace(b"document.published", b"document.deleted")
    assert [(c.op, c.version) for c in mapped("payload", body)] == [
        ("delete", "001714557600000.000000000")
    ]


def test_github_push_keeps_each_files_last_state():
    """Across commits, a file added then modified is one upsert and a removed file one delete."""
    changes = {c.cms_id: c.op for c in mapped("github")}
    assert changes == {
        "acme/docs:guide/new.md": "upsert",
        "acme/docs:README.md": "upsert",
        "acme/docs:guide/old.md": "delete",
    }


def test_github_upserts_fetch_the_file_at_the_pushed_commit():
    """Pushed files are thin and fetched from the contents API at the head commit."""
    change = mapped("github")[0]
    assert change.fetch is not None
    url, headers = change.fetch.render({"token": "ghp_x"})
    assert url.endswith(
        "/repos/acme/docs/contents/guide/new.md?ref=9f2c1e0d4b3a29384756e7d8c9b0a1f2e3d4c5b6"
    )
    assert headers["Authorization"] == "Bearer ghp_x"


def test_github_pushes_to_other_branches_are_ignored():
    """Only the default branch is published content."""
    assert mapped("github", edited("github", ref="refs/heads/feature")) == []


def test_github_ping_is_ignored():
    """The ping sent when a hook is created is not a push."""
    assert mapped("github", headers={"X-GitHub-Event": "ping"}) == []


def test_stripe_inactive_product_unpublishes():
    """A product updated to `active: false` is removed at the event's time."""
    body = SAMPLES["stripe"].body.replace(b'"active": true', b'"active": false')
    assert [(c.op, c.version) for c in mapped("stripe", body)] == [
        ("delete", "001714557590000.000000000")
    ]


def test_stripe_other_event_types_are_ignored():
    """Non-product events (prices, invoices) are not documents."""
    body = SAMPLES["stripe"].body.replace(b'"type": "product.updated"', b'"type": "price.updated"')
    assert mapped("stripe", body) == []


def test_standard_webhooks_deleted_types_delete():
    """A `*.deleted` event type is a tombstone at the body's timestamp."""
    body = edited("standard_webhooks", type="article.deleted")
    assert [(c.op, c.version) for c in mapped("standard_webhooks", body)] == [
        ("delete", "001714557600000.000000000")
    ]


def test_generic_second_configuration_reads_jmespath_fields():
    """A generic source reads quoted and computed JMESPath fields from its own payload shape."""
    change = mapped("generic_hmac", GENERIC_B, {}, config=GENERIC_B_CONFIG)[0]
    assert (change.cms_id, change.title, change.text) == ("B-77", "Generic B", "One. Two.")


def test_generic_configured_delete_events_delete():
    """A generic event listed as a delete is a tombstone."""
    body = GENERIC_B.replace(b'"action":"save"', b'"action":"destroy"')
    assert [c.op for c in mapped("generic_hmac", body, {}, config=GENERIC_B_CONFIG)] == ["delete"]


def test_generic_without_configuration_is_a_mapping_error():
    """A generic source with no field map cannot be mapped."""
    with pytest.raises(MappingError):
        map_event(PROVIDERS["generic_hmac"], {"id": "1"}, {})


def test_missing_document_id_is_a_mapping_error():
    """A verified payload without the provider's id is an error, not a silent drop."""
    with pytest.raises(MappingError):
        mapped(
            "stripe", SAMPLES["stripe"].body.replace(b'"id": "prod_Q1a2B3c4D5e6F7"', b'"id": null')
        )


@pytest.mark.parametrize("key", sorted(PROVIDERS))
def test_non_object_payloads_are_ignored(key):
    """A body that is not a JSON object (pings, form posts) yields no change."""
    assert map_event(PROVIDERS[key], "webhook_id=12", {}) == []


def test_event_name_comes_from_the_provider_record():
    """The event name is read where the record says: a header for Shopify, the body for Stripe."""
    assert (
        event_name(PROVIDERS["shopify"], {}, {"X-Shopify-Topic": "products/update"})
        == "products/update"
    )
    assert event_name(PROVIDERS["stripe"], {"type": "product.created"}, {}) == "product.created"


def test_delivery_key_is_stable_across_retries():
    """A Standard Webhooks retry has a new timestamp and signature but the same dedupe key."""
    first = signed("standard_webhooks")
    retry = signed("standard_webhooks", signed_at=NOW + 5)
    assert first.headers["webhook-timestamp"] != retry.headers["webhook-timestamp"]
    assert first.delivery_key() == retry.delivery_key()


def test_delivery_key_falls_back_to_body_fields():
    """Without Contentful's idempotency header, the key is built from sys.id, version and topic."""
    request = signed("contentful").without_header("X-Contentful-Idempotency-Key")
    key = request.delivery_key()
    assert key is not None
    assert key != signed("contentful").delivery_key()
    assert key.startswith("contentful:")


def test_delivery_key_is_none_without_any_recipe_parts():
    """A payload with none of the recipe's parts has no dedupe key."""
    assert delivery_key(PROVIDERS["stripe"], {}, {}) is None


def test_delivery_keys_differ_between_deliveries():
    """Two Shopify deliveries with different webhook ids have different keys."""
    a = signed("shopify")
    b = signed("shopify", headers={"X-Shopify-Webhook-Id": "another"})
    assert a.delivery_key() != b.delivery_key()


def test_republish_after_a_tombstone_wins():
    """A later re-publish sorts after the tombstone, so the document comes back."""
    topic = {"X-Contentful-Topic": "ContentManagement.Entry.unpublish"}
    tomb = mapped("contentful", CONTENTFUL_UNPUBLISH, topic)[0]
    republished = SAMPLES["contentful"].body.replace(
        b'"updatedAt":"2024-05-01T09:59:30.123Z"', b'"updatedAt":"2024-05-01T10:06:00.000Z"'
    )
    assert mapped("contentful", republished)[0].version > tomb.version


# --- field-mapped senders whose text is not where the default map looks (issue 12 item 11) ---

PORTABLE_TEXT = [
    {"_type": "block", "_key": "a1", "style": "h2",
     "children": [{"_type": "span", "_key": "s1", "text": "Opening hours", "marks": []}]},
    {"_type": "block", "_key": "a2", "style": "normal", "children": [
        {"_type": "span", "_key": "s2", "text": "Open ", "marks": []},
        {"_type": "span", "_key": "s3", "text": "daily", "marks": ["strong"]},
        {"_type": "span", "_key": "s4", "text": " from nine.", "marks": []},
    ]},
    {"_type": "image", "_key": "a3", "asset": {"_ref": "image-abc-200x200-png"}},
]  # fmt: skip


def sanity_without_text(**fields: object) -> str:
    payload = {k: v for k, v in json.loads(SAMPLES["sanity"].body).items() if k != "text"}
    return json.dumps({**payload, **fields})


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"body": PORTABLE_TEXT}, "Opening hours\nOpen daily from nine."),
        ({"body": "<p>Plain <em>HTML</em> body</p>"}, "Plain HTML body"),
        ({"content": "Content field"}, "Content field"),
        ({"description": "A description"}, "A description"),
    ],
)
def test_sanity_text_found_in_the_usual_fields(fields, text):
    """A Sanity projection without `text` is read from `body` (Portable Text flattened, or a
    string), `content` or `description` under the default field map."""
    (change,) = mapped("sanity", sanity_without_text(**fields))
    assert (change.op, change.text, change.no_text) == ("upsert", text, None)


def test_standard_webhooks_text_found_in_description():
    """A Standard Webhooks `data.description` is the text when `data.text` is absent."""
    payload = json.loads(SAMPLES["standard_webhooks"].body)
    del payload["data"]["text"]
    payload["data"]["description"] = "Described here"
    (change,) = mapped("standard_webhooks", json.dumps(payload))
    assert (change.text, change.no_text) == ("Described here", None)


def test_no_text_says_which_field_to_map_with_keys_only():
    """Text in an unusual field: the change carries a reason naming `mapping.text`, suggesting
    the field that holds prose and listing the keys present, never a value, under 250 chars."""
    secret_prose = "The quarterly numbers are confidential"
    (change,) = mapped("sanity", sanity_without_text(summary=secret_prose))
    assert change.text is None
    reason = change.no_text
    assert reason is not None
    assert reason.startswith("no text to index: set the source's mapping.text")
    assert '{"text": "summary"}' in reason
    assert "fields present: _id, _type, _rev, _updatedAt, title, url, slug" in reason
    assert secret_prose not in reason and "Sanity post" not in reason
    assert len(reason) < 250


def test_no_text_reason_names_the_data_fields_of_a_standard_webhook():
    """For Standard Webhooks the suggestion and the keys are those of `data`, and a long key
    list is cut to stay under 250 characters."""
    data = {"id": "art_9", "title": "T", "abstract": "Words that are text"}
    data.update({f"field_{n:02d}": n for n in range(40)})
    body = json.dumps({"type": "article.updated", "timestamp": "2024-05-01T10:00:00Z",
                       "data": data})  # fmt: skip
    (change,) = mapped("standard_webhooks", body)
    assert change.no_text is not None
    assert '{"text": "data.abstract"}' in change.no_text
    assert "fields present: id, title, abstract, field_00" in change.no_text
    assert len(change.no_text) < 250


LOOKUP_PAYLOADS = [
    {"post": {"ID": 7, "post_status": "publish", "meta": {"a": [1, 2]}}, "post_id": 7},
    {"post": [1, 2], "post_id": None},
    {"post": "text", "data": {"id": 0, "object": {"id": False}}},
    {"sys": {"id": "x", "contentType": {"sys": {"id": "post"}}}},
    [{"post": {"ID": 1}}],
    "not an object",
    None,
]
LOOKUP_PATHS = [
    "post_id", "post.ID", "post.post_status", "post.meta.a", "post.missing.deeper", "data.id",
    "data.object.id", "sys.contentType.sys.id", "_id", "post.meta.a[0]", "data.object || post",
    "[0].post.ID", "\"post\".ID",
]  # fmt: skip


@pytest.mark.parametrize("payload", LOOKUP_PAYLOADS)
def test_lookup_returns_what_jmespath_returns(payload):
    """Plain dotted paths are walked without JMESPath (they run several times per webhook);
    every path, plain or not, still reads exactly what JMESPath reads."""
    import jmespath

    from bridge.sync.providers.values import lookup

    for path in LOOKUP_PATHS:
        assert lookup(path, payload, {}) == jmespath.search(path, payload), path
