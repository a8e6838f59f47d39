"""Inbound CMS changes reach ZappWay in batches: few upsert calls, newest versions only.

Webhooks are signed generic-HMAC deliveries; the sync runs through the registered Huey task
against the in-process simulator, whose request log and document store are the evidence.
"""

from __future__ import annotations

import json
import math
import random

import httpx
import pytest

from tests.conftest import runtime_of
from tests.sync_helpers import (
    FAST,
    Bridge,
    Interposed,
    sim_store,
    upsert_calls,
    upstream_documents,
)


@pytest.fixture
def unlimited(sim_admin):
    """The simulator's own per-key limit off: these tests count calls, not budget."""
    sim_admin.settings(rate_limit_enabled=False)


def docs_per_call(call: dict) -> int:
    return len(call["body"]["documents"])


def test_ten_thousand_documents_go_out_in_full_batches(make_app, seeded, sim_admin, sim_app,
                                                       unlimited):  # fmt: skip
    """10,000 distinct documents become at most ceil(10,000 / 50) upsert calls, all delivered."""
    app = make_app(**FAST)
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    count = bridge.ingest_bulk(
        source, ((f"doc-{n}", 1, f"text of document {n}") for n in range(10_000))
    )
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain(timeout=120)
    calls = upsert_calls(sim_admin)
    assert len(calls) <= math.ceil(count / runtime_of(app).settings.sync_batch_size)
    assert all(call["status"] in (200, 201) for call in calls)
    assert bridge.states() == {"delivered": count}
    stored = upstream_documents(sim_app, datastore)
    assert {key: doc.text for key, doc in stored.items() if key.startswith(source.id)} == {
        f"{source.id}:doc-{n}": f"text of document {n}" for n in range(10_000)
    }


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_300_changes_to_120_documents_send_each_newest_version_once(
    backend, request, make_app, seeded, sim_admin, sim_app, unlimited
):
    """A burst with repeats and out-of-order versions costs ceil(120 / 50) calls; newest wins."""
    database = {"database_url": request.getfixturevalue("pg_url")} if backend == "postgres" else {}
    app = make_app(**{**FAST, "sync_debounce_s": 1.0, **database})
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    changes = [(f"page-{n % 120}", n // 120 + 1) for n in range(300)]  # versions 1..3
    random.Random(5).shuffle(changes)  # older versions often arrive after newer ones
    sim_admin.clear_requests()
    for doc_id, version in changes:
        bridge.change(source, doc_id, version, f"{doc_id} at version {version}")
    bridge.drain()
    calls = upsert_calls(sim_admin)
    assert len(calls) <= math.ceil(120 / 50)
    assert sum(docs_per_call(call) for call in calls) == 120
    newest = {doc_id: max(v for d, v in changes if d == doc_id) for doc_id, _ in changes}
    stored = upstream_documents(sim_app, datastore)
    assert {
        key.split(":", 1)[1]: doc.text for key, doc in stored.items() if key.startswith(source.id)
    } == {doc_id: f"{doc_id} at version {version}" for doc_id, version in newest.items()}
    assert bridge.states() == {"delivered": 120}


def test_batch_size_setting_sets_documents_per_call(make_app, seeded, sim_admin, unlimited):
    """With a batch size of 7, 30 documents take exactly 5 calls of at most 7 documents."""
    app = make_app(**FAST, sync_batch_size=7)
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"text {n}") for n in range(30)))
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain()
    calls = upsert_calls(sim_admin)
    assert sorted(docs_per_call(call) for call in calls) == [2, 7, 7, 7, 7]
    assert bridge.states() == {"delivered": 30}


def test_byte_limit_splits_batches(make_app, seeded, sim_admin, sim_app, unlimited):
    """With BRIDGE_SYNC_BATCH_BYTES at 20 kB, 40 documents of 2 kB go out in bodies of ~20 kB."""
    limit = 20_000
    app = make_app(**FAST, sync_batch_bytes=limit)
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"{n} " + "x" * 2000) for n in range(40)))
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain()
    calls = upsert_calls(sim_admin)
    sizes = [int(call["headers"]["Content-Length"]) for call in calls]
    assert len(calls) >= math.ceil(40 * 2000 / limit)
    assert max(sizes) <= limit + 200  # the `{"documents": [...]}` envelope and separators
    assert bridge.states() == {"delivered": 40}
    assert len([k for k in upstream_documents(sim_app, datastore) if k.startswith(source.id)]) == 40


def test_one_document_over_the_byte_limit_goes_alone(make_app, seeded, sim_admin, unlimited):
    """A document bigger than the byte limit is still sent, in a call of its own."""
    app = make_app(**FAST, sync_batch_bytes=10_000)
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, [("small-1", 1, "small"), ("big", 1, "y" * 30_000)])
    bridge.ingest_bulk(source, [("small-2", 1, "small too")])
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain()
    assert bridge.states() == {"delivered": 3}
    big_calls = [c for c in upsert_calls(sim_admin) if '"y' in json.dumps(c["body"])]
    assert len(big_calls) == 1
    assert '"small' not in json.dumps(big_calls[0]["body"])


def test_batch_over_the_upstream_body_cap_is_split_not_dead_lettered(
    make_app, seeded, sim_admin, sim_app, unlimited
):
    """ZappWay answering 413 to a batch makes the bridge halve it until each part fits."""
    sim_admin.settings(max_body_bytes=30_000)
    app = make_app(**FAST)
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"{n} " + "z" * 3000) for n in range(20)))
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain()
    statuses = [call["status"] for call in upsert_calls(sim_admin)]
    assert 413 in statuses
    assert bridge.states() == {"delivered": 20}
    assert len([k for k in upstream_documents(sim_app, datastore) if k.startswith(source.id)]) == 20


def test_document_over_the_upstream_body_cap_is_dead_with_the_reason(
    make_app, seeded, sim_admin, unlimited
):
    """A single document ZappWay answers 413 for is dead-lettered; its batch-mates arrive."""
    sim_admin.settings(max_body_bytes=30_000)
    app = make_app(**FAST)
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, [("a", 1, "fine"), ("huge", 1, "h" * 40_000), ("b", 1, "ok")])
    bridge.kick()
    bridge.drain()
    assert bridge.states() == {"delivered": 2, "dead": 1}
    assert "larger than ZappWay accepts" in (bridge.row("huge").last_error or "")


def test_documents_of_two_datastores_go_in_one_call_each(make_app, seeded, sim_admin, unlimited):
    """Changes for two sources on two datastores of one connection make one call per datastore."""
    other = sim_admin.create_datastore(seeded["org"]["id"], "Second store")["id"]
    app = make_app(**FAST)
    bridge = Bridge(app, seeded["key"])
    first = bridge.create_source(seeded["datastores"][0]["id"])
    second = bridge.create_source(other)
    bridge.ingest_bulk(first, ((f"a{n}", 1, "first store") for n in range(10)))
    bridge.ingest_bulk(second, ((f"b{n}", 1, "second store") for n in range(10)))
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain()
    calls = upsert_calls(sim_admin)
    assert sorted(call["path"].split("/")[-2] for call in calls) == sorted(
        [seeded["datastores"][0]["id"], other]
    )
    assert bridge.states() == {"delivered": 20}


def test_deletes_remove_the_upstream_document(make_app, seeded, sim_admin, sim_app, unlimited):
    """A delete after a delivered upsert removes that document upstream, one call per delete."""
    app = make_app(**FAST)
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    bridge.ingest_bulk(source, [("keep", 1, "stays"), ("drop", 1, "goes")])
    bridge.kick()
    bridge.drain()
    bridge.change(source, "drop", 2, "", event="deleted")
    bridge.drain()
    assert set(upstream_documents(sim_app, datastore)) >= {f"{source.id}:keep"}
    assert f"{source.id}:drop" not in upstream_documents(sim_app, datastore)
    deletes = [r for r in sim_admin.requests() if r["method"] == "DELETE"]
    assert len(deletes) == 1
    assert bridge.row("drop").state == "delivered"


def test_a_refused_batch_is_bisected_to_the_one_bad_document(
    make_app, seeded, sim_admin, sim_app, sim_transport, unlimited
):
    """ZappWay refusing (400) a batch because of one document dead-letters only that document."""

    def refuse_poison(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/upsert") and b"POISON" in request.read():
            return httpx.Response(
                400, json={"error": {"code": "BAD_REQUEST", "message": "text is not allowed"}}
            )
        return None

    app = make_app(transport=Interposed(sim_transport, refuse_poison), **FAST)
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    docs = [(f"d{n}", 1, "POISON" if n == 17 else f"fine {n}") for n in range(50)]
    bridge.ingest_bulk(source, docs)
    bridge.kick()
    bridge.drain()
    assert bridge.states() == {"delivered": 49, "dead": 1}
    assert bridge.row("d17").state == "dead"
    assert "text is not allowed" in (bridge.row("d17").last_error or "")
    stored = [k for k in upstream_documents(sim_app, datastore) if k.startswith(source.id)]
    assert len(stored) == 49


def test_legacy_profile_batches_creations_and_updates_in_place(make_app, seeded, sim_admin,
                                                               sim_app):  # fmt: skip
    """On the legacy API (no upsert by id) new documents still go 50 per call, and a later
    version replaces its document through the update route instead of adding a copy."""
    sim_admin.set_profile("legacy")
    app = make_app(**FAST, upstream_profile="legacy", upstream_base_url="http://sim/api")
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"first {n}") for n in range(60)))
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain()
    creations = [r for r in sim_admin.requests() if "/upsert/" in r["path"]]
    assert [len(call["body"]["documents"]) for call in creations] == [50, 10]
    bridge.ingest_bulk(source, ((f"d{n}", 2, f"second {n}") for n in range(5)))
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain()
    calls = sim_admin.requests()
    assert len([r for r in calls if "/update/" in r["path"]]) == 5
    assert [r for r in calls if "/upsert/" in r["path"]] == []
    store = sim_store(sim_app)
    with store.lock:
        texts = sorted(doc.text for doc in store.documents_of(datastore))
    assert len(texts) == 2 + 60  # the seeded two, and one per CMS document
    assert [t for t in texts if t.startswith("second")] == [f"second {n}" for n in range(5)]
    assert bridge.states() == {"delivered": 60}
