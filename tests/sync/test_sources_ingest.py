"""`POST /in/<token>`: verification by the source's provider, mapping, dedupe and coalescing.

Each test creates a source through the API, posts requests signed as the CMS would sign them
to the source's real inbound path, and reads the outcome where a user would see it: the answer,
`GET /v1/sources/<id>/events`, the pending-document rows and the simulator's request log.
The sync runs inline (immediate Huey, zero debounce), so an accepted change has reached the
simulator by the time the webhook is answered.
"""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update

from bridge.infra.models import Connection
from bridge.infra.storage import autocommit
from bridge.sync import marker
from bridge.sync.ingest import IngestRejected, ingest
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.schemes import TokenScheme
from bridge.sync.sources import find_by_token
from bridge.sync.tasks import SyncTasks
from bridge.web.context import service_of
from tests.actions_helpers import at_once
from tests.conftest import runtime_of
from tests.sources_helpers import (
    connect,
    pending_rows,
    served,
    signature_header,
    signed_for,
    snapshot,
    token_of,
    upserted,
    upstream_calls,
)
from tests.sync.providers.samples import CONTENTFUL_UNPUBLISH, SAMPLES, SW_SECRET, SW_SECRET_NEW

# What reaches ZappWay for each self-contained sample: (CMS id, title, text).
UPSERTS = {
    "wordpress": ("42", "Café hours", "Café menus & opening hours\nMon\u2013Fri\nSat"),
    "woocommerce": ("799", "Ship Your Idea", "Pellentesque habitant morbi tristique."),
    "contentful": (
        "yadj1kx9rmg0:master:5KsDBWseXY6QegucYAoacS", "Hello, Rich Text",
        "Intro\nRead the docs first.",
    ),
    "strapi": (
        "api::article.article:h90lgohlzfpjf3bvan72mzll", "Blocks demo",
        "Why\nBecause Strapi said so.\none\ntwo",
    ),
    "sanity": ("post-123", "Sanity post", "First block.\nSecond block."),
    "ghost": ("6632f3b1e3c4a10001a1b2c3", "Ghost & friends", "Hello Ghost"),
    "shopify": ("9007199254740993", "Blue Shirt", "Soft cotton shirt."),
    "webflow": ("6632f3b1e3c4a10001a1b2d4", "Webflow item", "Title\nBody text."),
    "payload": ("posts:6632f3b1e3c4a10001a1b2e5", "Payload post", "Flattened Lexical text."),
    "stripe": ("prod_Q1a2B3c4D5e6F7", "Mug", "A very comfortable mug."),
    "standard_webhooks": ("art_1", "SW article", "Body text"),
    "generic_hmac": ("c0ffee00-0000-4000-8000-000000000001", "Generic A", "Alpha & omega"),
}  # fmt: skip
# Thin samples: the CMS ids they name; upserts need a CMS fetch, deletes do not.
THIN = {
    "storyblok": {"369689": "upsert"},
    "directus": {"articles:15": "upsert"},
    "github": {
        "acme/docs:guide/new.md": "upsert",
        "acme/docs:README.md": "upsert",
        "acme/docs:guide/old.md": "delete",
    },
}
TIMESTAMPED = sorted(
    key
    for key, provider in PROVIDERS.items()
    if not isinstance(provider.scheme, TokenScheme)
    and provider.scheme is not None
    and provider.scheme.timestamp is not None
)
HMAC_SIGNED = sorted(k for k, p in PROVIDERS.items() if not isinstance(p.scheme, TokenScheme))
WRONG_SECRET = {"standard_webhooks": SW_SECRET_NEW, "payload": SW_SECRET_NEW}
GENERIC_ID = "c0ffee00-0000-4000-8000-000000000001"
T0 = 1_714_557_000  # 2024-05-01T09:50:00Z, in seconds: the generic sample's `modified` unit


@pytest.fixture
def bridge(make_app, seeded):
    return connect(make_app, seeded)


def test_every_provider_is_covered():
    """The end-to-end tables name every provider record exactly once."""
    assert sorted([*UPSERTS, *THIN]) == sorted(PROVIDERS)


def assert_replay_is_a_duplicate(bridge, sim_admin, source, request):
    """The same delivery again: 200 duplicate, not recorded, and no write anywhere."""
    before = snapshot(bridge.app, source["id"])
    events = bridge.events(source)
    sim_admin.clear_requests()
    again = bridge.post(source, request)
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["status"] == "duplicate"
    assert snapshot(bridge.app, source["id"]) == before
    assert upstream_calls(sim_admin) == []
    assert bridge.events(source) == events


@pytest.mark.parametrize("key", sorted(UPSERTS))
def test_signed_sample_reaches_zappway_mapped(bridge, sim_admin, key):
    """A provider's signed sample is accepted and upserted as `<source>:<cms id>` with clean
    text; the same delivery replayed is a duplicate that writes nothing."""
    source = bridge.source(key)
    sim_admin.clear_requests()
    request = signed_for(source, key)
    answer = bridge.post(source, request)
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["status"] == "accepted"
    cms_id, title, text = UPSERTS[key]
    (document,) = upserted(sim_admin, bridge.datastore_id)
    assert (document["id"], document["name"], document["text"]) == (
        f"{source['id']}:{cms_id}",
        title,
        text,
    )
    (event,) = bridge.events(source)
    assert event["status"] == "accepted"
    assert [(d["cms_id"], d["state"]) for d in event["documents"]] == [(cms_id, "delivered")]
    assert event["documents"][0]["upstream_id"]
    assert_replay_is_a_duplicate(bridge, sim_admin, source, request)


@pytest.mark.parametrize("key", sorted(THIN))
def test_thin_sample_is_accepted_and_dead_without_credentials(bridge, sim_admin, key):
    """Thin payloads are accepted; without CMS credentials their upserts end dead, saying so
    (deletes need no fetch and are delivered); a replay is a duplicate."""
    source = bridge.source(key)
    sim_admin.clear_requests()
    request = signed_for(source, key)
    answer = bridge.post(source, request)
    assert answer.status_code == 202, answer.get_json()
    (event,) = bridge.events(source)
    fates = {d["cms_id"]: d for d in event["documents"]}
    assert {cms_id: d["op"] for cms_id, d in fates.items()} == THIN[key]
    for document in fates.values():
        if document["op"] == "upsert":
            assert document["state"] == "dead"
            assert "credential" in document["reason"]
        else:
            assert document["state"] == "delivered"
    assert upstream_calls(sim_admin) == []
    if PROVIDERS[key].dedupe:
        assert_replay_is_a_duplicate(bridge, sim_admin, source, request)
    else:  # ids only, nothing to deduplicate by: recorded again, still nothing sent
        assert bridge.post(source, request).status_code == 202
        assert len(bridge.events(source)) == 2
        assert upstream_calls(sim_admin) == []


def test_delete_by_id_removes_the_upserted_document(bridge, sim_admin):
    """WooCommerce's id-only `product.deleted` deletes the document the update created."""
    source = bridge.source("woocommerce")
    assert bridge.post(source, signed_for(source, "woocommerce")).status_code == 202
    (row,) = pending_rows(bridge.app, source["id"])
    deleted = signed_for(
        source,
        "woocommerce",
        body=b'{"id":799}',
        headers={"X-WC-Webhook-Topic": "product.deleted", "X-WC-Webhook-Delivery-ID": "d-2"},
    )
    assert bridge.post(source, deleted).status_code == 202
    assert [c["path"] for c in upstream_calls(sim_admin, "DELETE")] == [
        f"/api/v1/datasources/{row.upstream_id}"
    ]
    (tomb,) = pending_rows(bridge.app, source["id"])
    assert (tomb.op, tomb.state) == ("delete", "delivered")


def test_contentful_unpublish_deletes_the_published_entry(bridge, sim_admin):
    """Contentful's sys-only `DeletedEntry` removes what the publish created."""
    source = bridge.source("contentful")
    assert bridge.post(source, signed_for(source, "contentful")).status_code == 202
    (published,) = pending_rows(bridge.app, source["id"])
    unpublish = signed_for(
        source,
        "contentful",
        body=CONTENTFUL_UNPUBLISH,
        headers={
            "X-Contentful-Topic": "ContentManagement.Entry.unpublish",
            "X-Contentful-Idempotency-Key": "unpublish-1",
        },
    )
    assert bridge.post(source, unpublish).status_code == 202
    assert [c["path"] for c in upstream_calls(sim_admin, "DELETE")] == [
        f"/api/v1/datasources/{published.upstream_id}"
    ]


def post_to_trigger(bridge, source, suffix, request):
    """POST a signed request to the source's URL for one trigger (`/in/<token>/<suffix>`)."""
    path = f"{source['inbound_path']}/{suffix}"
    return bridge.client.post(path, data=request.body, headers=request.headers)


def wordpress_post(source, **post_changes):
    """A WP Webhooks request as the plugin sends it by default: signed, no event header."""
    payload = json.loads(SAMPLES["wordpress"].body)
    payload["post"].update(post_changes)
    body = json.dumps(payload).replace("/", "\\/").encode()  # PHP's json_encode escapes
    return signed_for(source, "wordpress", body=body).without_header("X-WP-Webhook-Name")


def test_wordpress_delete_trigger_url_deletes_a_published_post(bridge, sim_admin):
    """WP Webhooks sends a permanently deleted post as it was (still `publish`, same modified
    time) and names no event: posted to the source's `/post_delete` URL it is deleted from the
    datastore, not taken for an update or a repeat of the update."""
    source = bridge.source("wordpress")
    update = post_to_trigger(bridge, source, "post_update", wordpress_post(source))
    assert update.status_code == 202, update.get_json()
    (published,) = pending_rows(bridge.app, source["id"])
    assert (published.op, published.state) == ("upsert", "delivered")
    answer = post_to_trigger(bridge, source, "post_delete", wordpress_post(source))
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["status"] == "accepted"
    assert [c["path"] for c in upstream_calls(sim_admin, "DELETE")] == [
        f"/api/v1/datasources/{published.upstream_id}"
    ]
    (tomb,) = pending_rows(bridge.app, source["id"])
    assert (tomb.op, tomb.state) == ("delete", "delivered")


@pytest.mark.parametrize("status", ["trash", "draft", "private", "pending"])
def test_wordpress_status_unpublishes_without_an_event_name(bridge, sim_admin, status):
    """On the bare inbound URL with no event header, a post updated to `trash`, `draft`,
    `private` or `pending` (in the same second as its publish) is removed from the datastore."""
    source = bridge.source("wordpress")
    assert bridge.post(source, wordpress_post(source)).status_code == 202
    (published,) = pending_rows(bridge.app, source["id"])
    answer = bridge.post(source, wordpress_post(source, post_status=status))
    assert answer.status_code == 202, answer.get_json()
    assert [c["path"] for c in upstream_calls(sim_admin, "DELETE")] == [
        f"/api/v1/datasources/{published.upstream_id}"
    ]


@pytest.mark.parametrize("suffix", ["Post_Delete", "post%20delete", "x" * 65, "d%C3%A9lete"])
def test_bad_event_suffix_is_400_naming_it(bridge, sim_admin, suffix):
    """An event suffix outside 1-64 of [a-z0-9_.-] is refused with 400 naming `event`, and
    nothing is recorded or queued."""
    source = bridge.source("wordpress")
    answer = post_to_trigger(bridge, source, suffix, wordpress_post(source))
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert (error["code"], error["fields"]) == ("invalid_event_suffix", ["event"])
    assert len(error["message"]) < 250
    assert bridge.events(source) == []
    assert pending_rows(bridge.app, source["id"]) == []


def test_event_suffix_on_an_unknown_token_is_404(bridge):
    """The suffix route keeps the bare URL's answers: an unknown token is 404."""
    answer = bridge.client.post("/in/not-a-token/post_delete", data=b"{}")
    assert answer.status_code == 404


def test_the_body_is_read_before_a_database_connection_is_taken(bridge):
    """Reading the body waits on the sender's socket (a greenlet switch under gevent): a pooled
    connection held across that wait made a burst of webhooks open and close overflow
    connections (bench/PROFILE.md, "after"). The ack's database work starts once it is read."""
    source = bridge.source("wordpress")
    request = signed_for(source, "wordpress")
    order: list[str] = []

    class Socket(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            order.append("read")
            return super().read(size)

        def readinto(self, buffer: Any) -> int:
            order.append("read")
            return super().readinto(buffer)

    def checkout(*_: Any) -> None:
        order.append("checkout")

    engine = runtime_of(bridge.app).engine
    event.listen(engine, "checkout", checkout)
    try:
        answer = bridge.client.post(
            source["inbound_path"], input_stream=Socket(request.body),
            headers={**request.headers, "Content-Length": str(len(request.body))},
        )  # fmt: skip
    finally:
        event.remove(engine, "checkout", checkout)
    assert answer.status_code == 202, answer.get_json()
    assert "checkout" in order
    assert order[0] == "read", order


def sanity_projection(**fields):
    """A Sanity webhook body whose projection has no `text` field."""
    payload = {k: v for k, v in json.loads(SAMPLES["sanity"].body).items() if k != "text"}
    return json.dumps({**payload, **fields}).encode()


def test_sanity_portable_text_body_reaches_zappway(bridge, sim_admin):
    """A Sanity projection sending the raw Portable Text `body` (no `text`) under the default
    map is flattened and upserted instead of dying with "no text to index"."""
    blocks = [
        {"_type": "block", "children": [{"_type": "span", "text": "First block."}]},
        {"_type": "block", "children": [{"_type": "span", "text": "Second block."}]},
    ]
    source = bridge.source("sanity")
    request = signed_for(source, "sanity", body=sanity_projection(body=blocks))
    assert bridge.post(source, request).status_code == 202
    (document,) = upserted(sim_admin, bridge.datastore_id)
    assert document["text"] == "First block.\nSecond block."


def test_sanity_text_elsewhere_dies_saying_which_field_to_map(bridge, sim_admin):
    """Text in a field the bridge cannot guess: the document is dead with a reason naming
    `mapping.text`, suggesting the field, listing the keys and no value (< 250 chars)."""
    source = bridge.source("sanity")
    body = sanity_projection(summary="Confidential prose kept out of errors")
    assert bridge.post(source, signed_for(source, "sanity", body=body)).status_code == 202
    (event,) = bridge.events(source)
    (document,) = event["documents"]
    assert document["state"] == "dead"
    reason = document["reason"]
    assert reason.startswith("no text to index: set the source's mapping.text")
    assert '{"text": "summary"}' in reason and "fields present: _id, _type" in reason
    assert "Confidential" not in reason and len(reason) < 250
    assert upserted(sim_admin, bridge.datastore_id) == []


@pytest.mark.parametrize("key", ["storyblok", "directus"])
def test_thin_provider_delete_needs_no_fetch(bridge, key):
    """Storyblok `deleted` and a Directus delete (`keys[]`) are delivered without credentials."""
    bodies = {
        "storyblok": b'{"action":"deleted","story_id":369689,"space_id":606}',
        "directus": b'{"event":"articles.items.delete","keys":["15","16"],"collection":"articles"}',
    }
    source = bridge.source(key)
    answer = bridge.post(source, signed_for(source, key, body=bodies[key]))
    assert answer.status_code == 202, answer.get_json()
    rows = pending_rows(bridge.app, source["id"])
    assert rows
    assert {(r.op, r.state) for r in rows} == {("delete", "delivered")}


# --- what is refused, and that a refusal queues nothing --------------------------------------


def assert_nothing_queued(bridge, sim_admin, source, before):
    assert snapshot(bridge.app, source["id"]) == before
    assert upstream_calls(sim_admin) == []


def refused(bridge, sim_admin, key, break_it, **fields):
    """Post a broken request for a fresh source; return (answer, events) after checking that
    no pending document changed and nothing was sent upstream."""
    source = bridge.source(key, **fields)
    sim_admin.clear_requests()
    before = snapshot(bridge.app, source["id"])
    answer = bridge.post(source, break_it(source))
    assert_nothing_queued(bridge, sim_admin, source, before)
    return answer, bridge.events(source)


def assert_rejected(answer, events, status, reason):
    assert answer.status_code == status, answer.get_json()
    assert answer.get_json()["error"]["code"] == reason
    assert [(e["status"], e["reason"], e["documents"]) for e in events] == [
        ("rejected", reason, [])
    ]


def breakages(key):
    """Each way to break a valid request for `key`, with the (status, reason) it must get."""
    token = isinstance(PROVIDERS[key].scheme, TokenScheme)
    other = WRONG_SECRET.get(key, "another-secret-0123456789")
    cases = {
        "unsigned": (
            lambda s: signed_for(s, key).without_header(signature_header(key)),
            (401, "missing-token" if token else "missing-signature"),
        ),
        "wrong secret": (
            lambda s: signed_for(s, key, secrets=[other]),
            (401, "bad-token" if token else "bad-signature"),
        ),
    }
    if not token:  # a static token does not cover the body
        cases["tampered"] = (lambda s: signed_for(s, key).tampered(), (401, "bad-signature"))
    if key in TIMESTAMPED:
        for skew in (-600, 600):
            cases[f"signed {skew:+} s"] = (
                lambda s, skew=skew: signed_for(s, key, signed_at=time.time() + skew),
                (401, "stale"),
            )
    return cases


@pytest.mark.parametrize("key", sorted(PROVIDERS))
def test_broken_requests_are_rejected_and_queue_nothing(bridge, sim_admin, key):
    """Unsigned, wrongly signed, tampered and stale or future-dated requests are refused with
    401 and their reason, each recorded as a rejected event, with nothing queued or sent."""
    assert_broken_requests_are_refused(bridge, sim_admin, key)


@pytest.mark.postgres
def test_broken_requests_are_rejected_and_queue_nothing_on_postgres(
    make_app, seeded, sim_admin, pg_url
):
    """The same through PostgreSQL's one-statement write, with an empty list of changes."""
    bridge = connect(make_app, seeded, database_url=pg_url)
    assert_broken_requests_are_refused(bridge, sim_admin, "standard_webhooks")


def assert_broken_requests_are_refused(bridge, sim_admin, key):
    source = bridge.source(key)
    sim_admin.clear_requests()
    cases = breakages(key)
    outcomes = {}
    for name, (break_it, _expected) in cases.items():
        answer = bridge.post(source, break_it(source))
        outcomes[name] = (answer.status_code, answer.get_json()["error"]["code"])
    assert outcomes == {name: expected for name, (_b, expected) in cases.items()}
    events = bridge.events(source)
    assert [(e["status"], e["reason"], e["documents"]) for e in reversed(events)] == [
        ("rejected", reason, []) for _status, reason in outcomes.values()
    ]
    assert_nothing_queued(bridge, sim_admin, source, [])


def test_timestamped_providers_are_the_expected_ones():
    """The stale cases cover every provider that signs a time (the table's list, pinned)."""
    assert TIMESTAMPED == [
        "contentful", "ghost", "payload", "sanity", "standard_webhooks", "stripe", "webflow"
    ]  # fmt: skip


def test_standard_webhooks_request_is_refused_by_a_storyblok_source(bridge, sim_admin):
    """Both send `webhook-signature`; a Storyblok source holding the very secret the request
    was signed with still refuses a Standard Webhooks signature (no sniffing)."""
    answer, events = refused(
        bridge,
        sim_admin,
        "storyblok",
        lambda s: signed_for(
            s, "standard_webhooks", body=SAMPLES["storyblok"].body, secrets=[SW_SECRET]
        ),
        secret=SW_SECRET,
    )
    assert answer.status_code in (400, 401)
    assert [e["status"] for e in events] == ["rejected"]


def test_storyblok_request_is_refused_by_a_standard_webhooks_source(bridge, sim_admin):
    """The converse: a bare SHA-1 `webhook-signature` made with the source's own secret does
    not pass as Standard Webhooks."""
    answer, events = refused(
        bridge,
        sim_admin,
        "standard_webhooks",
        lambda s: signed_for(
            s, "storyblok", body=SAMPLES["standard_webhooks"].body, secrets=[SW_SECRET]
        ),
    )
    assert answer.status_code in (400, 401)
    assert [e["status"] for e in events] == ["rejected"]


def test_malformed_json_with_a_valid_signature_is_400(bridge, sim_admin):
    """Verified bytes that are not JSON: 400 `malformed-json`, recorded as rejected."""
    answer, events = refused(
        bridge, sim_admin, "wordpress", lambda s: signed_for(s, "wordpress", body=b'{"post_id":')
    )
    assert_rejected(answer, events, 400, "malformed-json")


def test_verified_payload_without_an_id_is_unmappable(bridge, sim_admin):
    """A verified payload missing its document id: 422 `missing-id`, recorded as unmappable."""
    body = json.dumps({"doc": {"headline": "No id", "html": "<p>x</p>", "modified": T0}})
    answer, events = refused(
        bridge,
        sim_admin,
        "generic_hmac",
        lambda s: signed_for(s, "generic_hmac", body=body.encode()),
    )
    assert answer.status_code == 422
    assert answer.get_json()["error"]["code"] == "missing-id"
    assert [(e["status"], e["reason"]) for e in events] == [("unmappable", "missing-id")]


def test_event_that_names_no_document_is_ignored(bridge, sim_admin):
    """A WooCommerce order topic is verified, acknowledged as `ignored`, and queues nothing."""
    answer, _events = refused(
        bridge,
        sim_admin,
        "woocommerce",
        lambda s: signed_for(s, "woocommerce", headers={"X-WC-Webhook-Topic": "order.created"}),
    )
    assert answer.status_code == 200
    assert answer.get_json()["status"] == "ignored"


def json_paths(node, prefix=()):
    """Every location in a JSON tree (the root included), as key/index tuples."""
    yield prefix
    if isinstance(node, dict | list):
        for name, child in node.items() if isinstance(node, dict) else enumerate(node):
            yield from json_paths(child, (*prefix, name))


def replaced(node, path, value):
    """A copy of `node` with the value at `path` replaced."""
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = replaced(node[path[0]], path[1:], value)
    return copy


ODD_VALUES = (None, [], {"a": 1}, -1, 1e300, [1, {"a": None}], "x" * 300, "a\x00b")
CRASHERS = {
    "github commits not a list": ("github", ("commits",), True),
    "contentful space link null": ("contentful", ("sys", "space", "sys"), None),
    "strapi block type a list": ("strapi", ("entry", "content", 0, "type"), []),
    "wordpress status a list": ("wordpress", ("post", "post_status"), []),
    "generic time out of range": ("generic_hmac", ("doc", "modified"), 1e300),
    "id longer than the document map holds": ("generic_hmac", ("doc", "uuid"), "x" * 300),
    "id with a NUL": ("generic_hmac", ("doc", "uuid"), "a\x00b"),
}


@pytest.mark.parametrize("case", sorted(CRASHERS))
def test_verified_payload_of_unexpected_shape_is_unmappable(bridge, sim_admin, case):
    """A signed payload whose fields have shapes the mapper cannot use answers 422, recorded as
    unmappable, instead of a 500 the sender would retry for hours."""
    key, path, value = CRASHERS[case]
    body = json.dumps(replaced(json.loads(SAMPLES[key].body), path, value)).encode()
    answer, events = refused(bridge, sim_admin, key, lambda s: signed_for(s, key, body=body))
    assert answer.status_code == 422, answer.get_json()
    assert [e["status"] for e in events] == ["unmappable"]
    assert answer.get_json()["error"]["code"] == events[0]["reason"]


def surprises(app, source, key):
    """Run `ingest` (what the route runs) on the sample with each location replaced by two of
    the odd values (rotating, so every value meets every depth); return what ended other than
    accepted, ignored, duplicate or a 422 refusal."""
    box = runtime_of(app).box
    sample = json.loads(SAMPLES[key].body)
    found = {}
    with runtime_of(app).sessions() as session:
        target = find_by_token(session.connection(), token_of(source))
        for index, path in enumerate(json_paths(sample)):
            for value in (ODD_VALUES[index % 8], ODD_VALUES[(index + 3) % 8]):
                body = json.dumps(replaced(sample, path, value)).encode()
                request = signed_for(source, key, body=body)
                try:
                    ingest(session.connection(), box, target, raw_body=body,
                           headers=request.headers, method="POST", path=source["inbound_path"],
                           debounce_s=60)  # fmt: skip
                except IngestRejected as exc:
                    if exc.status_code != 422:
                        found[(path, repr(value))] = exc.code
                except Exception as exc:  # the route would answer 500
                    found[(path, repr(value))] = type(exc).__name__
                finally:
                    session.rollback()
    return found


def test_odd_value_anywhere_in_a_verified_payload_never_errors(bridge):
    """Any field of any provider's signed sample replaced by odd JSON is handled or refused
    with 422, never an unexpected error."""
    found = {key: surprises(bridge.app, bridge.source(key), key) for key in sorted(PROVIDERS)}
    assert {key: odd for key, odd in found.items() if odd} == {}


@pytest.mark.postgres
@pytest.mark.parametrize("key", ["generic_hmac", "wordpress"])
def test_odd_value_anywhere_never_errors_on_postgres(make_app, seeded, pg_url, key):
    """The same on PostgreSQL, whose columns enforce lengths and refuse NUL characters."""
    bridge = connect(make_app, seeded, database_url=pg_url)
    assert surprises(bridge.app, bridge.source(key), key) == {}


def test_a_rolled_back_request_leaves_no_trace(bridge, sim_admin):
    """`ingest` writes nothing durable before the caller commits, so when a request fails
    after recording its event, the sender's retry is accepted rather than dropped as a
    duplicate."""
    source = bridge.source("woocommerce")
    request = signed_for(source, "woocommerce")
    with runtime_of(bridge.app).sessions() as session:
        db = session.connection()
        target = find_by_token(db, token_of(source))
        result = ingest(db, runtime_of(bridge.app).box, target, raw_body=request.body,
                        headers=request.headers, method="POST", path=source["inbound_path"],
                        debounce_s=0)  # fmt: skip
        assert result.status == "accepted"
        session.rollback()
    assert bridge.events(source) == []
    retry = bridge.post(source, request)
    assert retry.status_code == 202, retry.get_json()
    assert len(upserted(sim_admin, bridge.datastore_id)) == 1


def test_webhook_racing_the_end_of_a_sync_schedules_the_next(bridge):
    """The sync marker was taken when the source was read, and the running sync released it
    (finding nothing due) before the webhook wrote: the webhook claims the marker, so its
    document does not wait for the minute sweep."""
    assert_racing_webhook_claims_the_sync(bridge)


@pytest.mark.postgres
def test_webhook_racing_the_end_of_a_sync_schedules_the_next_on_postgres(make_app, seeded, pg_url):
    """The same through PostgreSQL's one-statement write."""
    assert_racing_webhook_claims_the_sync(connect(make_app, seeded, database_url=pg_url))


def test_webhook_leaves_a_marker_younger_than_sync_stale_after(make_app, seeded):
    """A marker 5 minutes old belongs to a live sync when BRIDGE_SYNC_STALE_AFTER is an hour:
    a webhook does not take it over (a second concurrent run would follow)."""
    bridge = connect(make_app, seeded, sync_stale_after_s=3600, sync_debounce_s=30)
    source = bridge.source("woocommerce")
    five_minutes_ago = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    with runtime_of(bridge.app).sessions() as session:
        session.execute(update(Connection).values(sync_due_at=five_minutes_ago))
        session.commit()
    assert bridge.post(source, signed_for(source, "woocommerce")).status_code == 202
    with runtime_of(bridge.app).sessions() as session:
        assert session.get(Connection, bridge.connection_id).sync_due_at == five_minutes_ago


def assert_racing_webhook_claims_the_sync(bridge):
    source = bridge.source("woocommerce")
    request = signed_for(source, "woocommerce")
    engine, runtime = runtime_of(bridge.app).engine, runtime_of(bridge.app)
    with engine.connect() as db:
        assert marker.claim(db, bridge.connection_id, 60)  # a sync task is scheduled
        db.commit()
    with autocommit(engine) as db:
        target = find_by_token(db, token_of(source))
        marker.release(runtime, bridge.connection_id)  # it ends, nothing due yet
        result = ingest(db, runtime.box, target, raw_body=request.body, headers=request.headers,
                        method="POST", path=source["inbound_path"], debounce_s=0)  # fmt: skip
        db.commit()
    assert (result.status, result.schedule_sync) == ("accepted", True)


# --- coalescing: newest version wins, tombstones hold ----------------------------------------


def generic(modified: int, text: str, event: str = "doc.updated", delivery: str = "") -> dict:
    """A generic sample change of the same document at `modified` (s), with its own delivery."""
    body = {
        "doc": {
            "uuid": GENERIC_ID,
            "headline": "Generic A",
            "html": f"<p>{text}</p>",
            "link": "https://cms.example.com/a",
            "modified": modified,
        }
    }
    headers = {"X-Event": event, "X-Delivery": delivery or f"dlv-{event}-{modified}-{text}"}
    return {"body": json.dumps(body).encode(), "headers": headers}


def sanity(updated: str, text: str, operation: str = "update") -> dict:
    body = {**json.loads(SAMPLES["sanity"].body), "_updatedAt": updated, "text": text,
            "_rev": f"rev-{updated}", "operation": operation}  # fmt: skip
    return {"body": json.dumps(body).encode(), "headers": {"idempotency-key": f"idem-{updated}"}}


VERSIONS = {
    "generic_hmac": [generic(T0 + 1, "v1"), generic(T0 + 2, "v2"), generic(T0 + 3, "v3")],
    "sanity": [
        sanity("2024-05-01T09:51:00Z", "v1"),
        sanity("2024-05-01T09:52:00Z", "v2"),
        sanity("2024-05-01T09:53:00Z", "v3"),
    ],
}


def send(bridge, source, key, change):
    answer = bridge.post(source, signed_for(source, key, **change))
    assert answer.status_code == 202, answer.get_json()
    return answer


@pytest.mark.parametrize("key", sorted(VERSIONS))
def test_older_version_after_newer_is_dropped(bridge, sim_admin, key):
    """v3 then v1: ZappWay keeps v3's text, and v1's event says it was superseded."""
    source = bridge.source(key)
    v1, _v2, v3 = VERSIONS[key]
    send(bridge, source, key, v3)
    send(bridge, source, key, v1)
    assert [d["text"] for d in upserted(sim_admin, bridge.datastore_id)] == ["v3"]
    late, first = bridge.events(source)
    assert late["documents"][0]["state"] == "superseded"
    assert late["documents"][0]["by_version"] == first["documents"][0]["version"]
    (row,) = pending_rows(bridge.app, source["id"])
    assert json.loads(row.document_json)["text"] == "v3"


@pytest.mark.parametrize("key", sorted(VERSIONS))
def test_newer_version_replaces_older(bridge, sim_admin, key):
    """v1 then v3: the same ZappWay document is replaced with v3's text."""
    source = bridge.source(key)
    v1, _v2, v3 = VERSIONS[key]
    send(bridge, source, key, v1)
    send(bridge, source, key, v3)
    sent = upserted(sim_admin, bridge.datastore_id)
    assert [d["text"] for d in sent] == ["v1", "v3"]
    assert len({d["id"] for d in sent}) == 1


def test_same_version_under_two_delivery_ids_is_sent_once(bridge, sim_admin):
    """A resend with a new delivery id but the same document version causes no second upsert."""
    source = bridge.source("generic_hmac")
    send(bridge, source, "generic_hmac", generic(T0 + 1, "same", delivery="a"))
    answer = send(bridge, source, "generic_hmac", generic(T0 + 1, "same", delivery="b"))
    assert answer.get_json()["status"] == "accepted"
    assert len(upserted(sim_admin, bridge.datastore_id)) == 1


@pytest.mark.parametrize("key", sorted(VERSIONS))
def test_delete_then_late_update_stays_deleted(bridge, sim_admin, key):
    """After a delete, an older update arriving late does not bring the document back."""
    source = bridge.source(key)
    v1, v2, _v3 = VERSIONS[key]
    deletes = {
        "generic_hmac": generic(T0 + 3, "gone", event="doc.removed"),
        "sanity": sanity("2024-05-01T09:53:00Z", "gone", operation="delete"),
    }
    send(bridge, source, key, v1)
    send(bridge, source, key, deletes[key])
    sim_admin.clear_requests()
    send(bridge, source, key, v2)
    assert upstream_calls(sim_admin) == []
    (row,) = pending_rows(bridge.app, source["id"])
    assert (row.op, row.state) == ("delete", "delivered")


def test_burst_is_coalesced_into_one_batch(make_app, seeded, sim_admin):
    """Ten webhooks for three documents before the debounce ends: one upsert of the newest three."""
    bridge = connect(make_app, seeded, sync_debounce_s=30)
    source = bridge.source("generic_hmac")
    sim_admin.clear_requests()
    for step in range(10):
        doc_id = f"doc-{step % 3}"
        change = generic(T0 + step, f"{doc_id} v{step}", delivery=f"burst-{step}")
        body = json.loads(change["body"])
        body["doc"]["uuid"] = doc_id
        send(bridge, source, "generic_hmac", {**change, "body": json.dumps(body).encode()})
    assert upstream_calls(sim_admin) == []  # the debounced task has not run yet
    service_of(bridge.app, SyncTasks).sync_connection(bridge.connection_id)
    (call,) = upstream_calls(sim_admin)
    texts = sorted(doc["text"] for doc in call["body"]["documents"])
    assert texts == ["doc-0 v9", "doc-1 v7", "doc-2 v8"]


# --- real concurrency, and PostgreSQL ---------------------------------------------------------


def five_at_once(bridge, source, key="wordpress", **signing):
    """POST the same signed delivery five times at once over a real socket; return the answers."""
    request = signed_for(source, key, **signing)
    with served(bridge.app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        return at_once(
            5,
            lambda _i: http.post(
                source["inbound_path"], content=request.body, headers=request.headers
            ),
        )


def assert_one_upsert(bridge, sim_admin, source, answers):
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 202]
    assert sorted(a.json()["status"] for a in answers).count("duplicate") == 4
    assert len(upserted(sim_admin, bridge.datastore_id)) == 1
    assert [e["status"] for e in bridge.events(source)] == ["accepted"]


def test_concurrent_duplicates_cause_one_upsert(bridge, sim_admin):
    """Five simultaneous copies of one delivery: one accepted event, one upsert (SQLite)."""
    source = bridge.source("wordpress")
    assert_one_upsert(bridge, sim_admin, source, five_at_once(bridge, source))


@pytest.mark.postgres
def test_concurrent_duplicates_cause_one_upsert_on_postgres(make_app, seeded, sim_admin, pg_url):
    """The same on PostgreSQL, where the five requests truly overlap in the database."""
    bridge = connect(make_app, seeded, database_url=pg_url)
    source = bridge.source("wordpress")
    assert_one_upsert(bridge, sim_admin, source, five_at_once(bridge, source))


@pytest.mark.postgres
def test_same_version_from_five_deliveries_at_once_is_sent_once(
    make_app, seeded, sim_admin, pg_url
):
    """Five different delivery ids carrying one version at once: five events, one upsert."""
    bridge = connect(make_app, seeded, database_url=pg_url)
    source = bridge.source("standard_webhooks")
    requests = [signed_for(source, "standard_webhooks", msg_id=f"msg_{i}") for i in range(5)]
    with served(bridge.app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        answers = at_once(
            5,
            lambda i: http.post(
                source["inbound_path"], content=requests[i].body, headers=requests[i].headers
            ),
        )
    assert [a.status_code for a in answers] == [202] * 5
    assert len(upserted(sim_admin, bridge.datastore_id)) == 1
    assert len(bridge.events(source)) == 5


@pytest.mark.postgres
@pytest.mark.parametrize("key", ["contentful", "generic_hmac", "shopify"])
def test_signed_sample_reaches_zappway_on_postgres(make_app, seeded, sim_admin, pg_url, key):
    """End to end on PostgreSQL: accepted, mapped, upserted, and a replay is a duplicate."""
    bridge = connect(make_app, seeded, database_url=pg_url)
    source = bridge.source(key)
    request = signed_for(source, key)
    assert bridge.post(source, request).status_code == 202
    assert bridge.post(source, request).get_json()["status"] == "duplicate"
    cms_id, title, text = UPSERTS[key]
    (document,) = upserted(sim_admin, bridge.datastore_id)
    assert (document["id"], document["name"], document["text"]) == (
        f"{source['id']}:{cms_id}",
        title,
        text,
    )


def test_event_naming_one_document_twice_stores_it_once(bridge):
    """A Directus event listing the same key twice changes that document once."""
    assert_one_row_for_a_repeated_key(bridge)


@pytest.mark.postgres
def test_event_naming_one_document_twice_stores_it_once_on_postgres(make_app, seeded, pg_url):
    """On PostgreSQL, where one `INSERT ... ON CONFLICT` cannot touch a row twice."""
    assert_one_row_for_a_repeated_key(connect(make_app, seeded, database_url=pg_url))


def assert_one_row_for_a_repeated_key(bridge):
    source = bridge.source("directus")
    body = SAMPLES["directus"].body.replace(b'"keys":["15"]', b'"keys":["15","16","15"]')
    answer = bridge.post(source, signed_for(source, "directus", body=body))
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["changes"] == 2
    assert [row.cms_id for row in pending_rows(bridge.app, source["id"])] == [
        "articles:15", "articles:16"
    ]  # fmt: skip


@pytest.mark.postgres
def test_older_version_after_newer_is_dropped_on_postgres(make_app, seeded, sim_admin, pg_url):
    """PostgreSQL's `ON CONFLICT ... WHERE` keeps the newer version as SQLite's does."""
    bridge = connect(make_app, seeded, database_url=pg_url)
    source = bridge.source("generic_hmac")
    v1, _v2, v3 = VERSIONS["generic_hmac"]
    send(bridge, source, "generic_hmac", v3)
    send(bridge, source, "generic_hmac", v1)
    assert [d["text"] for d in upserted(sim_admin, bridge.datastore_id)] == ["v3"]
