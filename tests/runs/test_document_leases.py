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

from bridge.documents import store
from bridge.infra import leases
from bridge.infra.models import DocumentMapping
from tests.actions_helpers import act, at_once, build, calls, mapping_rows, sim_documents
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


def test_a_writer_whose_lease_may_have_lapsed_writes_nothing_more(
    legacy, seeded, sim_admin, monkeypatch
):
    """Two documents replaced one after the other (legacy: one update call each), ZappWay
    taking 0.8 s for each, while no renewal gets through under a 0.6 s lease: the first is
    sent; the second is not, since another writer may hold it by then. The caller is told to
    try again (409), and the retry sends only what is left."""
    datastore = seeded["datastores"][0]["id"]
    monkeypatch.setattr(store, "LEASE", SHORT)
    monkeypatch.setattr(store, "HELD", NeverRenewing(DocumentMapping, SHORT))

    def both(text: str):
        documents = [{"id": "a", "text": text}, {"id": "b", "text": text}]
        return legacy.act(UPSERT, {"datastore_id": datastore, "documents": documents})

    assert both("One").status_code == 200
    sim_admin.clear_requests()
    sim_admin.add_fault("latency", path="/update/", seconds=0.8)
    refused = both("Two")
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["error"]["code"] == "document_busy"
    assert len(calls(sim_admin, "/update/", "POST")) == 1
    again = both("Two")
    assert again.status_code == 200, again.get_json()
    assert sorted(d["status"] for d in again.get_json()["documents"]) == ["unchanged", "updated"]
    assert len(calls(sim_admin, "/update/", "POST")) == 2
