"""`/v1/sources`: create, list, delete, rotate, replay and events; input checks; secret hygiene.

Sources are made and inspected through the HTTP API with a connection token; webhooks are
signed for the source's real inbound path and posted to it, as a CMS would.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, update

from bridge.infra.models import InboundEvent, Source
from bridge.infra.storage import purge_before
from bridge.sync import sources
from tests.conftest import bearer, housekeeping, runtime_of
from tests.sources_helpers import (
    connect,
    pending_rows,
    signed_for,
    source_fields,
    upserted,
)
from tests.sync.providers.samples import SAMPLES

ROUTES = (
    ("get", "/v1/sources/{id}/events"),
    ("delete", "/v1/sources/{id}"),
    ("post", "/v1/sources/{id}/rotate-secret"),
    ("post", "/v1/sources/{id}/replay"),
)


@pytest.fixture
def bridge(make_app, seeded):
    return connect(make_app, seeded)


def woo(source, delivery, **signing):
    """The WooCommerce sample as delivery `delivery` (each delivery id is a new event)."""
    return signed_for(source, "woocommerce", headers={"X-WC-Webhook-Delivery-ID": delivery},
                      **signing)  # fmt: skip


# --- create, list, delete ---------------------------------------------------------------------


def test_create_answers_url_and_secret(bridge):
    """201 with id, provider, datastore, inbound path and full URL, state and the secret."""
    response = bridge.create(source_fields("wordpress", bridge.datastore_id))
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "provider", "datastore_id", "inbound_path", "inbound_url",
                         "state", "created_at", "secret"}  # fmt: skip
    assert (body["provider"], body["datastore_id"], body["state"]) == (
        "wordpress",
        bridge.datastore_id,
        "active",
    )
    assert body["inbound_path"].startswith("/in/")
    assert body["inbound_url"].endswith(body["inbound_path"])
    assert body["secret"] == SAMPLES["wordpress"].secret


@pytest.mark.parametrize("key", ["standard_webhooks", "wordpress"])
def test_generated_secret_has_the_provider_form_and_verifies(bridge, key):
    """Without `secret` one is generated in the provider's form; requests signed with it pass."""
    body = source_fields(key, bridge.datastore_id)
    del body["secret"]
    source = bridge.create(body).get_json()
    secret = source["secret"]
    if key == "standard_webhooks":
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    else:
        assert len(secret) >= 32
    answer = bridge.post(source, signed_for(source, key, secrets=[secret]))
    assert answer.status_code == 202, answer.get_json()


def test_list_shows_the_connections_sources_without_secrets(bridge, make_app, seeded):
    """`GET /v1/sources` lists this connection's active sources, never a secret."""
    first = bridge.source("wordpress")
    second = bridge.source("ghost")
    listed = bridge.client.get("/v1/sources", headers=bridge.headers()).get_json()
    assert [s["id"] for s in listed] == [first["id"], second["id"]]
    assert all("secret" not in s for s in listed)
    assert listed[0]["inbound_path"] == first["inbound_path"]
    other = connect(make_app, seeded)
    assert other.client.get("/v1/sources", headers=other.headers()).get_json() == []


def test_deleted_source_url_answers_410(bridge):
    """After DELETE the inbound URL answers 410, and the source is gone from the API."""
    source = bridge.source("wordpress")
    response = bridge.client.delete(f"/v1/sources/{source['id']}", headers=bridge.headers())
    assert response.status_code == 204
    answer = bridge.post(source, signed_for(source, "wordpress"))
    assert answer.status_code == 410
    assert answer.get_json()["error"]["code"] == "source_deleted"
    assert bridge.client.get("/v1/sources", headers=bridge.headers()).get_json() == []
    again = bridge.client.delete(f"/v1/sources/{source['id']}", headers=bridge.headers())
    assert again.status_code == 404
    assert pending_rows(bridge.app, source["id"]) == []


def test_revoked_connections_url_answers_410_and_records_nothing(bridge):
    """Once the connection is revoked its documents could never be sent: the inbound URL says
    410 (senders that honour it stop retrying) and nothing is stored for the request."""
    source = bridge.source("wordpress")
    assert bridge.client.delete("/v1/me", headers=bridge.headers()).status_code == 204
    answer = bridge.post(source, signed_for(source, "wordpress"))
    assert answer.status_code == 410
    assert answer.get_json()["error"]["code"] == "connection_revoked"
    assert pending_rows(bridge.app, source["id"]) == []
    with runtime_of(bridge.app).sessions() as session:
        assert session.query(InboundEvent).filter_by(source_id=source["id"]).count() == 0


def test_deleting_a_source_cancels_its_unsent_documents(make_app, seeded, sim_admin):
    """Documents still waiting when the source is deleted are cancelled and never sent."""
    bridge = connect(make_app, seeded, sync_debounce_s=30)  # the sync is not due yet
    source = bridge.source("wordpress")
    assert bridge.post(source, signed_for(source, "wordpress")).status_code == 202
    assert [row.state for row in pending_rows(bridge.app, source["id"])] == ["pending"]
    bridge.client.delete(f"/v1/sources/{source['id']}", headers=bridge.headers())
    (row,) = pending_rows(bridge.app, source["id"])
    assert (row.state, row.last_error) == ("cancelled", "source deleted")
    assert upserted(sim_admin, bridge.datastore_id) == []


def test_unknown_inbound_token_is_404(bridge):
    """A URL no source owns answers 404 in the error envelope."""
    answer = bridge.client.post("/in/not-a-real-token", data=b"{}")
    assert answer.status_code == 404
    assert answer.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("method", "path"), [("post", "/v1/sources"), ("get", "/v1/sources")])
def test_management_needs_a_connection_token(bridge, method, path):
    """Without a bearer token the management routes answer 401."""
    response = getattr(bridge.client, method)(path, json={})
    assert response.status_code == 401


# --- input checks -----------------------------------------------------------------------------


def generic_body(mapping=None, **config):
    """A generic HMAC source body: `config` beside the `X-Sig` header, a minimal mapping."""
    return {
        "provider": "generic_hmac",
        "config": {"header": "X-Sig", **config},
        "mapping": mapping or {"id": "doc.uuid"},
    }


BAD_INPUT = {
    "unknown provider": ({"provider": "drupal"}, "provider"),
    "missing provider": ({"provider": None}, "provider"),
    "bad datastore id": ({"datastore_id": "../x y"}, "datastore_id"),
    "missing datastore id": ({"datastore_id": None}, "datastore_id"),
    "short secret": ({"secret": "short"}, "secret"),
    "unknown field": ({"colour": "blue"}, "colour"),
    "unknown option": ({"config": {"colour": "blue"}}, "config"),
    "mapping for a fixed provider": ({"mapping": {"id": "post_id"}}, "mapping"),
    "unknown credential": ({"credentials": {"password": "hunter22"}}, "credentials"),
    "credential not text": ({"credentials": {"token": 42}}, "credentials"),
    "base_url not http": ({"credentials": {"base_url": "ftp://cms.example.com"}}, "credentials"),
    "generic without header": ({**generic_body(), "config": {}}, "config"),
    "generic empty header": (generic_body(header=""), "config"),
    "generic header with spaces": (generic_body(header="X Sig"), "config"),
    "bad algorithm": (generic_body(algorithm="md5"), "config"),
    "bad window": (generic_body(window_s=-5), "config"),
    "timestamp without header": (generic_body(content="{timestamp}.{body}"), "config"),
    "invalid jmespath": (generic_body({"id": "doc.[uuid"}), "mapping"),
    "unknown mapping field": (generic_body({"id": "x", "colour": "blue"}), "mapping"),
    "bad time unit": (generic_body({"id": "x", "updated_unit": "days"}), "mapping"),
    "bad token header": ({"provider": "directus", "config": {"token_header": "X Token"}}, "config"),
    "token header on an hmac provider": (
        {"provider": "woocommerce", "config": {"token_header": "X-Token"}},
        "config",
    ),
    "standard webhooks secret not whsec": (
        {"provider": "standard_webhooks", "secret": "not-a-base64-secret!"},
        "secret",
    ),
    "payload secret not base64": (
        {"provider": "payload", "secret": "whsec_???notbase64"},
        "secret",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_422_naming_the_field(bridge, case):
    """Each bad body is refused with 422 naming the field, in a short message, with no source."""
    overrides, field = BAD_INPUT[case]
    body = {**source_fields("wordpress", bridge.datastore_id), **overrides}
    response = bridge.create({k: v for k, v in body.items() if v is not None})
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_input"
    assert [f for f in error["fields"] if f.split(".")[0] == field], error
    assert field in error["message"]
    assert len(error["message"]) < 250
    assert bridge.client.get("/v1/sources", headers=bridge.headers()).get_json() == []


PUBLIC_CMS = "93.184.216.34"
PRIVATE_BASE_URLS = (
    "http://127.0.0.1:8055",
    "http://[::1]/api",
    "http://169.254.169.254/latest/meta-data/",
    "https://10.0.0.7",
    "https://cms.internal.test",  # a name that resolves to a private address
)


@pytest.mark.parametrize("base_url", PRIVATE_BASE_URLS)
def test_a_private_cms_base_url_is_422_naming_credentials_base_url(bridge, resolver, base_url):
    """A CMS base URL that is or resolves to a private, loopback or link-local address is refused
    at creation (as hook targets are), naming the field and the setting that would allow it."""
    resolver({"cms.internal.test": ["10.1.2.3"]})
    body = {
        **source_fields("directus", bridge.datastore_id),
        "credentials": {"token": "t", "base_url": base_url},
    }
    response = bridge.create(body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["fields"] == ["credentials.base_url"]
    assert error["message"].startswith("credentials.base_url:")
    assert "BRIDGE_ALLOW_PRIVATE_TARGETS" in error["message"]
    assert len(error["message"]) < 250
    assert bridge.client.get("/v1/sources", headers=bridge.headers()).get_json() == []


def test_a_public_or_allowed_private_cms_base_url_is_accepted(make_app, seeded, resolver):
    """A public CMS host is accepted; with BRIDGE_ALLOW_PRIVATE_TARGETS a loopback one is too."""
    resolver({"cms.example.test": [PUBLIC_CMS]})
    for allow, base_url in ((False, "https://cms.example.test"), (True, "http://127.0.0.1:8055")):
        bridge = connect(make_app, seeded, allow_private_targets=allow)
        body = {
            **source_fields("directus", bridge.datastore_id),
            "credentials": {"token": "t", "base_url": base_url},
        }
        response = bridge.create(body)
        assert response.status_code == 201, (base_url, response.get_json())


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b""])
def test_body_that_is_not_a_json_object_is_400(bridge, raw):
    """A create body that is not a JSON object answers 400 `malformed_json`."""
    response = bridge.client.post(
        "/v1/sources",
        data=raw,
        headers={**bridge.headers(), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_json"


def test_generic_source_from_api_options_verifies_and_maps(bridge, sim_admin):
    """A generic HMAC source built from JSON config and mapping verifies and maps its sender."""
    source = bridge.source("generic_hmac")
    assert bridge.post(source, signed_for(source, "generic_hmac")).status_code == 202
    (document,) = upserted(sim_admin, bridge.datastore_id)
    assert document["name"] == "Generic A"


# --- isolation --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_another_connection_cannot_touch_the_source(bridge, make_app, seeded, method, path):
    """Someone else's source is a 404 on every route, and stays intact for its owner."""
    source = bridge.source("woocommerce")
    other = connect(make_app, seeded)
    call = getattr(bridge.client, method)
    response = call(path.format(id=source["id"]), headers=other.headers(), json={})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert bridge.post(source, woo(source, "still-mine")).status_code == 202
    assert [e["status"] for e in bridge.events(source)] == ["accepted"]


# --- rotation ---------------------------------------------------------------------------------


def test_rotation_overlap_old_and_new_verify_others_do_not(bridge):
    """After rotate-secret both the old and the new secret verify; a third secret does not."""
    source = bridge.source("woocommerce")
    old = source["secret"]
    rotated = bridge.rotate(source)
    assert rotated.status_code == 200
    new = rotated.get_json()["secret"]
    assert new != old
    assert bridge.post(source, woo(source, "old", secrets=[old])).status_code == 202
    assert bridge.post(source, woo(source, "new", secrets=[new])).status_code == 202
    third = bridge.post(source, woo(source, "third", secrets=["a-third-random-secret"]))
    assert third.status_code == 401
    assert [e["status"] for e in bridge.events(source)] == [
        "rejected",
        "accepted",
        "accepted",
    ]


def test_rotation_to_a_chosen_secret(bridge):
    """`{secret}` in the rotate body becomes the new current secret."""
    source = bridge.source("woocommerce")
    assert bridge.rotate(source, secret="chosen-secret-0042").get_json()["secret"] == (
        "chosen-secret-0042"
    )
    assert bridge.post(source, woo(source, "d1", secrets=["chosen-secret-0042"])).status_code == 202


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("woocommerce", "short"),
        ("woocommerce", 12345678),
        ("standard_webhooks", "not-whsec-at-all"),
    ],
)
def test_rotation_to_an_unusable_secret_is_422(bridge, key, secret):
    """A chosen secret that could never verify is refused, and the current one keeps working."""
    source = bridge.source(key)
    response = bridge.rotate(source, secret=secret)
    assert response.status_code == 422
    assert "secret" in response.get_json()["error"]["fields"]
    request = signed_for(source, key, secrets=[source["secret"]])
    assert bridge.post(source, request).status_code == 202


def test_second_rotation_keeps_the_first_secret_in_its_overlap(bridge):
    """Rotating twice within the overlap leaves the original secret verifying too."""
    source = bridge.source("woocommerce")
    original = source["secret"]
    bridge.rotate(source)
    bridge.rotate(source)
    assert bridge.post(source, woo(source, "d1", secrets=[original])).status_code == 202


def test_previous_secret_stops_after_the_overlap(bridge):
    """24 hours after a rotation only the new secret is active."""
    source = bridge.source("woocommerce")
    new = bridge.rotate(source).get_json()["secret"]
    runtime = runtime_of(bridge.app)
    with runtime_of(bridge.app).sessions() as session:
        row = session.get(Source, source["id"])
        soon = datetime.now(UTC) + timedelta(hours=23)
        later = datetime.now(UTC) + timedelta(hours=24, minutes=1)
        assert sources.active_secrets(row, runtime.box, soon) == [new, source["secret"]]
        assert sources.active_secrets(row, runtime.box, later) == [new]


# --- replay and events ------------------------------------------------------------------------


def test_dead_document_is_replayed(bridge, sim_admin):
    """A document ZappWay refused ends dead with the reason; replay sends it again."""
    source = bridge.source("woocommerce")
    sim_admin.add_fault("status", path="/upsert", status=400, times=1)
    assert bridge.post(source, woo(source, "d1")).status_code == 202
    (event,) = bridge.events(source)
    (dead,) = event["documents"]
    assert dead["state"] == "dead"
    assert dead["reason"]
    replayed = bridge.client.post(f"/v1/sources/{source['id']}/replay", headers=bridge.headers())
    assert replayed.status_code == 202
    assert replayed.get_json() == {"replayed": 1}
    (event,) = bridge.events(source)
    assert event["documents"][0]["state"] == "delivered"
    assert event["documents"][0]["upstream_id"]
    assert len(upserted(sim_admin, bridge.datastore_id)) == 2
    again = bridge.client.post(f"/v1/sources/{source['id']}/replay", headers=bridge.headers())
    assert again.get_json() == {"replayed": 0}


def test_events_show_pending_before_the_sync_runs(make_app, seeded):
    """Within the debounce an accepted change is listed as pending, with no upstream id yet."""
    bridge = connect(make_app, seeded, sync_debounce_s=30)
    source = bridge.source("woocommerce")
    assert bridge.post(source, woo(source, "d1")).status_code == 202
    (event,) = bridge.events(source)
    assert [(d["cms_id"], d["op"], d["state"], d["upstream_id"]) for d in event["documents"]] == [
        ("799", "upsert", "pending", None)
    ]


def test_events_are_newest_first_with_reasons(bridge):
    """Rejected and accepted events are listed newest first, each with its reason."""
    source = bridge.source("woocommerce")
    bridge.post(source, woo(source, "d1"))
    bridge.post(source, woo(source, "d2").tampered())
    events = bridge.events(source)
    assert [(e["status"], e["reason"]) for e in events] == [
        ("rejected", "bad-signature"),
        ("accepted", None),
    ]
    assert events[0]["id"] > events[1]["id"]


def events_page(bridge, source, **query):
    return bridge.client.get(
        f"/v1/sources/{source['id']}/events", query_string=query, headers=bridge.headers()
    )


def test_events_page_back_and_filter_by_status(bridge):
    """`limit` cuts the newest-first list, `before` gives the next page, `status` filters."""
    source = bridge.source("woocommerce")
    for delivery in ("d1", "d2", "d3"):
        bridge.post(source, woo(source, delivery))
    bridge.post(source, woo(source, "d4").tampered())
    first = events_page(bridge, source, limit=3).get_json()
    assert [e["delivery_key"] is None for e in first] == [True, False, False]
    rest = events_page(bridge, source, limit=3, before=first[-1]["id"]).get_json()
    assert [e["id"] for e in rest] == [first[-1]["id"] - 1]
    rejected = events_page(bridge, source, status="rejected").get_json()
    assert [(e["status"], e["reason"]) for e in rejected] == [("rejected", "bad-signature")]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"before": "abc"}, "before"), ({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"),
     ({"status": "lost"}, "status"), ({"page": "2"}, "page")],
)  # fmt: skip
def test_bad_events_query_is_422_naming_the_field(bridge, query, field):
    source = bridge.source("woocommerce")
    answer = events_page(bridge, source, **query)
    assert answer.status_code == 422
    assert field in answer.get_data(as_text=True)
    assert len(answer.get_data(as_text=True)) < 250


def test_housekeeping_forgets_old_refusals_but_not_delivery_keys(make_app, seeded, sim_admin):
    """Refused requests older than BRIDGE_INBOUND_RETENTION_DAYS are purged by housekeeping; an
    accepted delivery's event is kept, so a replay of that signed request (WooCommerce signs no
    time) is still a duplicate, however old."""
    assert_old_events_are_forgotten(connect(make_app, seeded, inbound_retention_days=7), sim_admin)


@pytest.mark.postgres
def test_housekeeping_forgets_old_events_on_postgres(make_app, seeded, sim_admin, pg_url):
    """The same purge statement on PostgreSQL."""
    bridge = connect(make_app, seeded, inbound_retention_days=7, database_url=pg_url)
    assert_old_events_are_forgotten(bridge, sim_admin)


def test_purge_works_through_a_backlog_in_batches(bridge):
    """A backlog larger than one batch is deleted in several statements, and only events
    received before the cutoff."""
    source = bridge.source("woocommerce")
    for delivery in ("d1", "d2", "d3", "d4", "d5"):
        bridge.post(source, woo(source, delivery))
    cutoff = datetime.now(UTC)
    newest = bridge.post(source, woo(source, "d6")).get_json()["event_id"]
    received_at = cast(Table, InboundEvent.__table__).c.received_at
    assert purge_before(runtime_of(bridge.app).engine, received_at, cutoff, batch=2) == 5
    assert [e["id"] for e in bridge.events(source)] == [newest]


def assert_old_events_are_forgotten(bridge, sim_admin):
    source = bridge.source("woocommerce")
    accepted = woo(source, "d-old")
    accepted_id = bridge.post(source, accepted).get_json()["event_id"]
    assert bridge.post(source, woo(source, "d-bad").tampered()).status_code == 401
    eight_days_ago = datetime.now(UTC) - timedelta(days=8)
    with runtime_of(bridge.app).sessions() as session:
        session.execute(update(InboundEvent).values(received_at=eight_days_ago))
        session.commit()
    assert bridge.post(source, woo(source, "d-bad-2").tampered()).status_code == 401
    sent = len(upserted(sim_admin, bridge.datastore_id))
    housekeeping(bridge.app)
    remaining = [(e["status"], e["id"] == accepted_id) for e in bridge.events(source)]
    assert remaining == [("rejected", False), ("accepted", True)]
    assert bridge.post(source, accepted).get_json()["status"] == "duplicate"
    assert len(upserted(sim_admin, bridge.datastore_id)) == sent


# --- secret hygiene ---------------------------------------------------------------------------

SOURCE_SECRET = "src-secret-7c1e5b9a3d"
ROTATED_SECRET = "src-secret-rotated-4f2a8e6c"
CMS_TOKEN = "cms-read-token-9d3b7a1f5e"


def test_secrets_never_leave_except_once(bridge, sim_admin, caplog, capsys, tmp_path, resolver):
    """Source secrets, CMS credentials and signatures appear in no log, listing, event or
    database byte; a secret is shown only in the answers that create it."""
    resolver({"cms.example.com": [PUBLIC_CMS]})  # the base URL's check asks no real DNS
    caplog.set_level(logging.DEBUG)
    created = bridge.create({
        **source_fields("woocommerce", bridge.datastore_id), "secret": SOURCE_SECRET,
        "credentials": {"token": CMS_TOKEN, "base_url": "https://cms.example.com"},
    })  # fmt: skip
    assert created.status_code == 201
    source = created.get_json()
    requests = [
        woo(source, "d1", secrets=[SOURCE_SECRET]),
        woo(source, "d2", secrets=[SOURCE_SECRET]).tampered(),
        woo(source, "d3", secrets=["wrong-secret-123"]),
    ]
    answers = [bridge.post(source, request) for request in requests]
    assert [a.status_code for a in answers] == [202, 401, 401]
    assert bridge.rotate(source, secret=ROTATED_SECRET).status_code == 200
    answers.append(bridge.post(source, woo(source, "d4", secrets=[ROTATED_SECRET])))
    texts = [a.get_data(as_text=True) for a in answers]
    for path in ("/v1/sources", f"/v1/sources/{source['id']}/events"):
        texts.append(bridge.client.get(path, headers=bridge.headers()).get_data(as_text=True))
    runtime_of(bridge.app).engine.dispose()
    db_bytes = b"".join(p.read_bytes() for p in Path(tmp_path).glob("bridge.sqlite3*"))
    assert b"inbound_events" in db_bytes
    logged = caplog.text + capsys.readouterr().out
    signatures = [r.header("X-WC-Webhook-Signature") for r in requests]
    for secret in (SOURCE_SECRET, ROTATED_SECRET, CMS_TOKEN, *signatures):
        assert secret.encode() not in db_bytes
        assert secret not in logged
        assert all(secret not in text for text in texts)


def test_other_connections_token_is_not_a_source_credential(bridge, make_app, seeded):
    """A connection token in the inbound URL's place finds nothing."""
    other = connect(make_app, seeded)
    answer = bridge.client.post(f"/in/{other.token}", data=b"{}", headers=bearer(other.token))
    assert answer.status_code == 404


@pytest.mark.parametrize(
    ("provider", "credentials", "missing"),
    [
        ("directus", {"token": "t"}, "credentials.base_url"),
        ("directus", {"base_url": "https://cms.example.com"}, "credentials.token"),
        ("storyblok", {"base_url": "https://api-us.storyblok.com"}, "credentials.token"),
    ],
)
def test_credentials_that_could_never_fetch_are_422_naming_the_missing_one(
    bridge, provider, credentials, missing
):
    """A thin-payload source given credentials without one its fetch needs (Directus: a token
    and its address) is refused at creation, instead of every document ending dead later.
    Without any credentials it is still created: deletes need no fetch (README)."""
    response = bridge.create({**source_fields(provider, bridge.datastore_id),
                              "credentials": credentials})  # fmt: skip
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["fields"] == [missing]
    assert bridge.create(source_fields(provider, bridge.datastore_id)).status_code == 201
