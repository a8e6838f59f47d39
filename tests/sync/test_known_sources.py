"""Acks on PostgreSQL for a source this process already knows (`sources.KnownSources`): no
lookup, a write guarded by the source row as it is, and every change to the source (deleted,
revoked, rotated, reconfigured) still answered at once, as a fresh lookup would."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, update

from bridge.infra import crypto, storage
from bridge.infra.models import InboundEvent, Source
from bridge.sync import sources, store
from bridge.sync.providers.mapping import Change
from bridge.sync.views import KNOWN
from tests.conftest import runtime_of
from tests.sources_helpers import connect, pending_rows, signed_for


@pytest.fixture
def bridge(make_app, seeded, pg_url):
    return connect(make_app, seeded, database_url=pg_url)


@pytest.fixture
def lookups(monkeypatch) -> list[str]:
    """Each source lookup the ack path makes (the real function, counted)."""
    made: list[str] = []
    real = sources.find_by_digest

    def counted(db: Any, digest: str) -> Any:
        made.append(digest)
        return real(db, digest)

    monkeypatch.setattr(sources, "find_by_digest", counted)
    return made


def stored_events(bridge: Any, source: dict[str, Any]) -> int:
    with runtime_of(bridge.app).sessions() as session:
        return len(session.scalars(
            select(InboundEvent.id).where(InboundEvent.source_id == source["id"])
        ).all())  # fmt: skip


def woo(source: dict[str, Any], delivery: str, **signing: Any):
    return signed_for(source, "woocommerce", headers={"X-WC-Webhook-Delivery-ID": delivery},
                      **signing)  # fmt: skip


@pytest.mark.postgres
def test_a_known_source_is_looked_up_once(bridge, lookups):
    source = bridge.source("woocommerce")
    answers = [bridge.post(source, woo(source, f"d{n}")) for n in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len(lookups) == 1
    assert bridge.post(source, woo(source, "d1")).get_json()["status"] == "duplicate"
    assert len(lookups) == 1  # a duplicate is told apart from a changed source
    assert [e["status"] for e in bridge.events(source)] == ["accepted"] * 3


@pytest.mark.postgres
def test_revoking_the_connection_applies_to_the_next_webhook(bridge, lookups):
    source = bridge.source("woocommerce")
    assert bridge.post(source, woo(source, "before")).status_code == 202
    assert bridge.client.delete("/v1/me", headers=bridge.headers()).status_code == 204
    answer = bridge.post(source, woo(source, "after"))
    assert answer.status_code == 410
    assert answer.get_json()["error"]["code"] == "connection_revoked"
    assert stored_events(bridge, source) == 1  # nothing stored for the request after


@pytest.mark.postgres
def test_deleting_the_source_applies_to_the_next_webhook(bridge):
    source = bridge.source("woocommerce")
    assert bridge.post(source, woo(source, "before")).status_code == 202
    deleted = bridge.client.delete(f"/v1/sources/{source['id']}", headers=bridge.headers())
    assert deleted.status_code == 204
    answer = bridge.post(source, woo(source, "after"))
    assert answer.status_code == 410
    assert answer.get_json()["error"]["code"] == "source_deleted"
    assert stored_events(bridge, source) == 1
    assert len(pending_rows(bridge.app, source["id"])) == 1  # the document from before only


@pytest.mark.postgres
def test_a_rotated_secret_verifies_at_once_and_a_forgery_is_recorded_once(bridge, lookups):
    source = bridge.source("woocommerce")
    old = source["secret"]
    assert bridge.post(source, woo(source, "first", secrets=[old])).status_code == 202
    new = bridge.rotate(source).get_json()["secret"]
    assert bridge.post(source, woo(source, "new", secrets=[new])).status_code == 202
    assert bridge.post(source, woo(source, "old", secrets=[old])).status_code == 202
    forged = bridge.post(source, woo(source, "forged", secrets=["not-the-secret"]))
    assert forged.status_code == 401
    statuses = [e["status"] for e in bridge.events(source)]
    assert statuses == ["rejected", "accepted", "accepted", "accepted"]  # newest first


@pytest.mark.postgres
def test_a_forgery_against_a_known_source_is_rejected_and_recorded(bridge):
    source = bridge.source("woocommerce")
    assert bridge.post(source, woo(source, "ok")).status_code == 202
    assert bridge.post(source, woo(source, "bad").tampered()).status_code == 401
    assert [e["status"] for e in bridge.events(source)] == ["rejected", "accepted"]


@pytest.mark.postgres
def test_the_guarded_write_writes_nothing_for_a_changed_source(bridge):
    """The statement itself: a remembered source whose secrets changed since is refused
    (`source_changed`), and nothing of the event or its document is stored."""
    source = bridge.source("woocommerce")
    digest = crypto.hash_token(source["inbound_path"].removeprefix("/in/"))
    engine = runtime_of(bridge.app).engine
    with storage.autocommit(engine) as db:
        remembered = sources.find_by_digest(db, digest)
    assert remembered is not None
    change = Change(op="upsert", cms_id="42", version="2", title="t", text="x")

    def write(key: str) -> store.Written:
        with storage.autocommit(engine) as db:
            return store.write_event(
                db, remembered, key=key, status="accepted", reason=None, changes=[change],
                debounce_s=0, known_digest=digest,
            )  # fmt: skip

    assert write("k1").event_id is not None
    assert write("k1") == store.Written(None, False)  # a duplicate, not a change
    with runtime_of(bridge.app).sessions() as session:
        session.execute(update(Source).values(secrets_ciphertext="rotated"))
        session.commit()
    assert write("k2") == store.Written(None, False, source_changed=True)
    with runtime_of(bridge.app).sessions() as session:
        keys = session.scalars(select(InboundEvent.delivery_key)).all()
    assert keys == ["k1"]


def test_the_memory_is_bounded() -> None:
    known = sources.KnownSources(size=2)
    target = sources.InboundTarget("s", "c", "p", "{}", "x", "active", False)
    for digest in ("a", "b", "c"):
        known.remember(digest, target)
    assert [known.get(d) for d in ("a", "b", "c")] == [None, target, target]
    known.forget("b")
    assert known.get("b") is None


def test_sqlite_looks_the_source_up_every_time(make_app, seeded, lookups):
    bridge = connect(make_app, seeded)
    source = bridge.source("woocommerce")
    for n in range(2):
        assert bridge.post(source, woo(source, f"d{n}")).status_code == 202
    assert len(lookups) == 2
    assert KNOWN.get(crypto.hash_token(source["inbound_path"].removeprefix("/in/"))) is None
