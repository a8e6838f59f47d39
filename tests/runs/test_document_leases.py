"""The document map's leases: short, and renewed while their writer runs (`bridge.infra.leases`).

Two writers of one external id are serialised by a lease on its map row. An upsert slower than
the lease keeps it, so the second writer waits and ZappWay gets one create; a writer's lease
ends `LEASE` after its last renewal, so a process killed in the middle of an upsert leaves the
document busy for that long at most (it was two minutes). The legacy profile is the witness: it
ignores ids, so a second create would be a second document.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from bridge.documents import store
from bridge.infra import leases
from bridge.infra.models import DocumentMapping
from bridge.sync import state as sync_state
from tests.actions_helpers import act, at_once, build, calls, mapping_rows, sim_documents
from tests.conftest import runtime_of
from tests.hooks.test_lease_renewal import NeverRenewing
from tests.processes import wait_until

SHORT = timedelta(seconds=0.6)
UPSERT = "upsert_document"


@pytest.fixture
def short_leases(monkeypatch) -> None:
    """Writers' leases last `SHORT`, and are renewed by as much every tenth of a second."""
    monkeypatch.setattr(store, "LEASE", SHORT)
    monkeypatch.setattr(store, "HELD", leases.HeldLeases(DocumentMapping, SHORT))


@pytest.fixture
def legacy(make_app, app_database, sim_admin, seeded):
    """A bridge on the legacy profile, on SQLite and on PostgreSQL."""
    sim_admin.set_profile("legacy")
    return build(make_app, seeded["key"], "legacy", **app_database)


def _upsert(bridge, datastore: str, external_id: str):
    body = {"datastore_id": datastore, "document": {"id": external_id, "text": "Raced"}}
    return act(bridge.app.test_client(), bridge.token, UPSERT, body)


def test_an_upsert_slower_than_its_lease_keeps_it(legacy, seeded, sim_admin, sim_app, short_leases):
    """ZappWay takes 1.5 s to create under a 0.6 s lease: the second writer of the same id
    waits for the first, finds it created, and sends nothing. Without renewal it would take
    the lapsed lease and create a second copy."""
    datastore = seeded["datastores"][0]["id"]
    sim_admin.add_fault("latency", path="/upsert", seconds=1.5)
    before = len(sim_documents(sim_app, datastore))
    responses = at_once(2, lambda _i: _upsert(legacy, datastore, "slow-1"))
    assert [r.status_code for r in responses] == [200, 200]
    statuses = sorted(r.get_json()["documents"][0]["status"] for r in responses)
    assert statuses == ["created", "unchanged"]
    assert len(sim_documents(sim_app, datastore)) == before + 1
    assert len(calls(sim_admin, "/upsert", "POST")) == 1
    (row,) = mapping_rows(legacy.app, datastore)
    assert (row.lease_token, row.lease_until) == (None, None)


def test_a_writers_lease_ends_one_lease_after_its_last_renewal(legacy, seeded, sim_admin):
    """While an upsert waits for ZappWay, its document's lease ends at most `LEASE` ahead:
    that is how long a process killed now would keep the document busy."""
    datastore = seeded["datastores"][0]["id"]
    sim_admin.add_fault("latency", path="/upsert", seconds=1.5)
    writer = threading.Thread(target=_upsert, args=(legacy, datastore, "slow-2"))
    writer.start()
    wait_until(lambda: any(r.lease_token for r in mapping_rows(legacy.app, datastore)), 5, "lease")
    (row,) = mapping_rows(legacy.app, datastore)
    writer.join(10)
    assert row.lease_until is not None
    assert row.lease_until <= datetime.now(UTC) + store.LEASE
    assert store.LEASE == leases.LENGTH == timedelta(seconds=30)


def test_a_writer_whose_document_was_taken_over_writes_nothing_more(
    legacy, seeded, sim_admin, monkeypatch
):
    """Two documents replaced one after the other (legacy: one update call each), ZappWay
    taking 0.8 s for each, while no renewal gets through under a 0.6 s lease, and another
    writer takes the second document over meanwhile: the first is sent; the second is not, and
    the caller is told to try again (409). The retry, once the other's lease is over, sends
    only what is left."""
    datastore = seeded["datastores"][0]["id"]
    monkeypatch.setattr(store, "LEASE", SHORT)
    monkeypatch.setattr(store, "HELD", NeverRenewing(DocumentMapping, SHORT))

    def both(text: str):
        documents = [{"id": "a", "text": text}, {"id": "b", "text": text}]
        return legacy.act(UPSERT, {"datastore_id": datastore, "documents": documents})

    def take_b_over() -> None:
        with runtime_of(legacy.app).sessions() as session:
            session.execute(
                update(DocumentMapping)
                .where(DocumentMapping.external_id == "b")
                .values(lease_token="theirs", lease_until=datetime.now(UTC) + SHORT)
            )
            session.commit()

    assert both("One").status_code == 200
    sim_admin.clear_requests()
    sim_admin.add_fault("latency", path="/update/", seconds=0.8)
    taker = threading.Timer(0.4, take_b_over)  # while the update of "a" is in flight
    taker.start()
    refused = both("Two")
    taker.join()
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["error"]["code"] == "document_busy"
    assert len(calls(sim_admin, "/update/", "POST")) == 1
    again = both("Two")
    assert again.status_code == 200, again.get_json()
    assert sorted(d["status"] for d in again.get_json()["documents"]) == ["unchanged", "updated"]
    assert len(calls(sim_admin, "/update/", "POST")) == 2


def test_a_lapsed_lease_nobody_took_is_renewed_as_the_write_leaves(
    legacy, seeded, sim_admin, monkeypatch
):
    """The same, with nobody taking the second document: its lease lapsed unrenewed, but no
    other claim marked it, so it is renewed as its update is about to leave, and both are
    sent (no refusal that was not needed)."""
    datastore = seeded["datastores"][0]["id"]
    monkeypatch.setattr(store, "LEASE", SHORT)
    monkeypatch.setattr(store, "HELD", NeverRenewing(DocumentMapping, SHORT))
    documents = [{"id": "a", "text": "One"}, {"id": "b", "text": "One"}]
    assert (
        legacy.act(UPSERT, {"datastore_id": datastore, "documents": documents}).status_code == 200
    )
    sim_admin.clear_requests()
    sim_admin.add_fault("latency", path="/update/", seconds=0.8)
    documents = [{"id": "a", "text": "Two"}, {"id": "b", "text": "Two"}]
    answer = legacy.act(UPSERT, {"datastore_id": datastore, "documents": documents})
    assert answer.status_code == 200, answer.get_json()
    assert [d["status"] for d in answer.get_json()["documents"]] == ["updated", "updated"]
    assert len(calls(sim_admin, "/update/", "POST")) == 2


def test_a_hand_back_frees_only_this_processs_sync_leases(legacy, seeded):
    """A worker handing back a sync run it cannot finish frees the document leases that run
    holds in this process, not another process's (a run elsewhere, or a claim made since)."""
    runtime = runtime_of(legacy.app)
    datastore = seeded["datastores"][0]["id"]
    ours = store.DocumentMap(runtime.sessions, legacy.connection_id, sync_state.LEASE_PREFIX)
    with ours.leased(datastore, ["mine"]):
        with runtime.sessions() as session:
            session.add(
                DocumentMapping(
                    connection_id=legacy.connection_id, datastore_id=datastore,
                    external_id="theirs", lease_token="sync-elsewhere",
                    lease_until=datetime.now(UTC) + leases.LENGTH,
                )
            )  # fmt: skip
            session.commit()
        assert sync_state.release_own_leases(runtime, legacy.connection_id) == 1
        assert ours.get(datastore, "mine").lease_token is None
        assert ours.get(datastore, "theirs").lease_token == "sync-elsewhere"
        assert store.HELD.held([ours.get(datastore, "mine").id]) == {}


def test_a_writer_kept_waiting_is_told_when_the_lease_ends(legacy, seeded, monkeypatch):
    """Another writer holds the document longer than a request may wait: 409 `document_busy`
    with a Retry-After of the time left on that writer's lease."""
    monkeypatch.setattr(store, "WAIT_S", 0.2)
    datastore = seeded["datastores"][0]["id"]
    with runtime_of(legacy.app).sessions() as session:
        session.add(
            DocumentMapping(
                connection_id=legacy.connection_id, datastore_id=datastore, external_id="held",
                lease_token="other", lease_until=datetime.now(UTC) + timedelta(seconds=12),
            )
        )  # fmt: skip
        session.commit()
    answer = _upsert(legacy, datastore, "held")
    assert answer.status_code == 409, answer.get_json()
    assert answer.get_json()["error"]["code"] == "document_busy"
    assert int(answer.headers["Retry-After"]) in (11, 12)
