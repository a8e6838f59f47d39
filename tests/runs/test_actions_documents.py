"""Upsert and Delete Document: the external-id map, replace-not-duplicate, batches, concurrency.

The simulator's state is the witness: the documented upstream upserts by `documents[].id`, the
legacy one ignores ids (every upsert duplicates), so there the bridge must use the update route.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.actions_helpers import (
    PROFILES,
    Bridge,
    act,
    at_once,
    build,
    calls,
    delete_upstream,
    mapping_rows,
    sim_documents,
)

UPSERT = "upsert_document"
DELETE = "delete_document"


@pytest.fixture(params=PROFILES)
def bridge(request, make_app, sim_admin, seeded) -> Bridge:
    """A bridge and a connection for each upstream profile (the simulator switched to match)."""
    sim_admin.set_profile(request.param)
    return build(make_app, seeded["key"], request.param)


@pytest.fixture
def datastore(seeded) -> str:
    """The seeded "Help Center" datastore (two documents already in it)."""
    datastore_id: str = seeded["datastores"][0]["id"]
    return datastore_id


def upsert(bridge: Bridge, datastore: str, **body: Any):
    return bridge.act(UPSERT, {"datastore_id": datastore, **body})


def upsert_calls(sim_admin) -> list[dict[str, Any]]:
    return calls(sim_admin, "/upsert", "POST")


def update_calls(sim_admin) -> list[dict[str, Any]]:
    return calls(sim_admin, "/external/datastores/update/", "POST")


def texts(sim_app, datastore: str) -> dict[str, str]:
    return {doc.id: doc.text for doc in sim_documents(sim_app, datastore)}


# --- upsert -------------------------------------------------------------------------------------


def test_first_upsert_creates_and_remembers_the_id(bridge, datastore, sim_app):
    """A new id is created upstream and its upstream id recorded in the map."""
    before = len(sim_documents(sim_app, datastore))
    response = upsert(bridge, datastore, document={"id": "post-1", "text": "Hello world"})
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["created"] == 1
    assert body["updated"] == body["unchanged"] == 0
    (result,) = body["documents"]
    assert result["id"] == "post-1"
    assert result["status"] == "created"
    assert texts(sim_app, datastore)[result["upstream_id"]] == "Hello world"
    assert len(sim_documents(sim_app, datastore)) == before + 1
    (row,) = mapping_rows(bridge.app, datastore)
    assert (row.external_id, row.upstream_id) == ("post-1", result["upstream_id"])


def test_same_id_again_replaces_instead_of_duplicating(bridge, datastore, sim_app, sim_admin):
    """Re-sending an id with new text updates that document; the datastore does not grow."""
    first = upsert(bridge, datastore, document={"id": "post-1", "text": "Version one"})
    created = first.get_json()["documents"][0]
    count = len(sim_documents(sim_app, datastore))
    second = upsert(bridge, datastore, document={"id": "post-1", "text": "Version two"})
    updated = second.get_json()["documents"][0]
    assert second.status_code == 200, second.get_json()
    assert updated["status"] == "updated"
    assert updated["upstream_id"] == created["upstream_id"]
    assert len(sim_documents(sim_app, datastore)) == count
    assert texts(sim_app, datastore)[created["upstream_id"]] == "Version two"
    if bridge.profile == "legacy":
        (update,) = update_calls(sim_admin)
        assert update["body"]["id"] == created["upstream_id"]
        assert len(upsert_calls(sim_admin)) == 1
    else:
        sent = upsert_calls(sim_admin)
        assert [r["body"]["documents"][0]["id"] for r in sent] == ["post-1", "post-1"]
        assert update_calls(sim_admin) == []


def test_unchanged_content_costs_no_upstream_call(bridge, datastore, sim_admin):
    """Sending the same document twice: the second is "unchanged" and nothing goes upstream."""
    document = {"id": "post-1", "text": "Same text", "title": "Post", "metadata": {"k": "v"}}
    created = upsert(bridge, datastore, document=document).get_json()["documents"][0]
    seen = sim_admin.requests()[-1]["seq"]
    again = upsert(bridge, datastore, document=document)
    assert again.status_code == 200
    assert again.get_json()["documents"] == [
        {"id": "post-1", "upstream_id": created["upstream_id"], "status": "unchanged"}
    ]
    assert again.get_json()["unchanged"] == 1
    assert sim_admin.requests(since=seen) == []


def test_batch_is_one_upstream_call_with_results_in_input_order(
    bridge, datastore, sim_app, sim_admin
):
    """A batch of documents is sent in one upsert; each result lines up with its input."""
    documents = [{"id": f"doc-{n}", "text": f"Text number {n}"} for n in (3, 1, 2)]
    response = upsert(bridge, datastore, documents=documents)
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["created"] == 3
    assert [d["id"] for d in body["documents"]] == ["doc-3", "doc-1", "doc-2"]
    stored = texts(sim_app, datastore)
    assert [stored[d["upstream_id"]] for d in body["documents"]] == [
        "Text number 3",
        "Text number 1",
        "Text number 2",
    ]
    assert len(upsert_calls(sim_admin)) == 1


def test_mixed_batch_creates_updates_and_skips(bridge, datastore, sim_app):
    """One batch may hold a new, a changed and an unchanged document: each gets its status."""
    upsert(bridge, datastore, documents=[{"id": "a", "text": "A1"}, {"id": "b", "text": "B1"}])
    count = len(sim_documents(sim_app, datastore))
    batch = [{"id": "a", "text": "A1"}, {"id": "b", "text": "B2"}, {"id": "c", "text": "C1"}]
    body = upsert(bridge, datastore, documents=batch).get_json()
    assert [d["status"] for d in body["documents"]] == ["unchanged", "updated", "created"]
    assert (body["created"], body["updated"], body["unchanged"]) == (1, 1, 1)
    assert len(sim_documents(sim_app, datastore)) == count + 1
    assert sorted(texts(sim_app, datastore).values())[:3] == ["A1", "B2", "C1"]


def test_documents_without_an_id_are_always_created(bridge, datastore, sim_app):
    """Without an id there is nothing to match on: each send creates a document."""
    before = len(sim_documents(sim_app, datastore))
    for _ in range(2):
        body = upsert(bridge, datastore, document={"text": "Anonymous"}).get_json()
        assert body["documents"][0]["status"] == "created"
        assert body["documents"][0]["id"] is None
    assert len(sim_documents(sim_app, datastore)) == before + 2


def test_batch_over_the_upstream_body_cap_is_split(client, connection, datastore, sim_admin):
    """Documents adding up to more than the upstream's 1 MB body cap go in several upserts."""
    documents = [{"id": f"big-{n}", "text": "x" * 310_000} for n in range(3)]
    response = act(
        client, connection["token"], UPSERT, {"datastore_id": datastore, "documents": documents}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 3
    sent = upsert_calls(sim_admin)
    assert len(sent) == 2
    assert all(r["status"] in (200, 201) for r in sent)


def test_legacy_upstream_gets_no_metadata(make_app, sim_admin, seeded, datastore, sim_app):
    """The legacy upstream rejects free-form metadata (400): none is sent, on create or update."""
    sim_admin.set_profile("legacy")
    bridge = build(make_app, seeded["key"], "legacy")
    document = {
        "id": "post-1",
        "text": "One",
        "title": "Post",
        "url": "https://example.com/p/1",
        "metadata": {"source": "cms", "updated_at": "2025-01-15"},
    }
    first = upsert(bridge, datastore, document=document)
    second = upsert(bridge, datastore, document={**document, "text": "Two"})
    assert first.status_code == 200, first.get_json()
    assert second.status_code == 200, second.get_json()
    assert second.get_json()["documents"][0]["status"] == "updated"
    (created,) = upsert_calls(sim_admin)
    assert created["body"] == {"documents": [{"text": "One", "name": "Post"}]}
    (updated,) = update_calls(sim_admin)
    assert "metadata" not in updated["body"]


def test_documented_upstream_gets_metadata_and_url(client, connection, datastore, sim_app):
    """The documented upstream takes free-form metadata (a null value left out, as Make and n8n
    send an empty mapped field); the url travels as source_url."""
    document = {
        "id": "post-1",
        "text": "One",
        "url": "https://example.com/p/1",
        "metadata": {"source": "cms", "views": 3, "empty": None},  # a mapped field left empty
    }
    body = act(
        client, connection["token"], UPSERT, {"datastore_id": datastore, "document": document}
    ).get_json()
    (stored,) = [
        d for d in sim_documents(sim_app, datastore) if d.id == body["documents"][0]["upstream_id"]
    ]
    assert stored.metadata == {"source": "cms", "views": 3, "source_url": "https://example.com/p/1"}


def test_document_deleted_upstream_is_created_again(bridge, datastore, sim_app):
    """When the mapped document vanished upstream, a changed upsert re-creates it (no error)."""
    first = upsert(bridge, datastore, document={"id": "post-1", "text": "One"}).get_json()
    gone = first["documents"][0]["upstream_id"]
    delete_upstream(sim_app, gone)
    response = upsert(bridge, datastore, document={"id": "post-1", "text": "Two"})
    result = response.get_json()["documents"][0]
    assert response.status_code == 200, response.get_json()
    assert result["upstream_id"] != gone
    assert texts(sim_app, datastore)[result["upstream_id"]] == "Two"
    (row,) = mapping_rows(bridge.app, datastore)
    assert row.upstream_id == result["upstream_id"]


def test_concurrent_upserts_of_one_new_id_make_one_document(bridge, datastore, sim_app, sim_admin):
    """Five platforms retrying the same new document at once produce a single upstream document."""
    sim_admin.add_fault("latency", path="/upsert", seconds=0.2)
    before = len(sim_documents(sim_app, datastore))
    body = {"datastore_id": datastore, "document": {"id": "race-1", "text": "Raced"}}

    def send(_index: int):
        return act(bridge.app.test_client(), bridge.token, UPSERT, body)

    responses = at_once(5, send)
    assert [r.status_code for r in responses] == [200] * 5
    results = [r.get_json()["documents"][0] for r in responses]
    assert sorted(r["status"] for r in results) == ["created"] + ["unchanged"] * 4
    assert len({r["upstream_id"] for r in results}) == 1
    assert len(sim_documents(sim_app, datastore)) == before + 1
    assert len(upsert_calls(sim_admin)) == 1


def test_concurrent_upserts_on_postgres(make_app, sim_admin, seeded, datastore, sim_app, pg_url):
    """The lease on the map row serialises writers on PostgreSQL too (legacy: ids ignored)."""
    sim_admin.set_profile("legacy")
    bridge = build(make_app, seeded["key"], "legacy", database_url=pg_url)
    sim_admin.add_fault("latency", path="/upsert", seconds=0.2)
    before = len(sim_documents(sim_app, datastore))
    body = {"datastore_id": datastore, "document": {"id": "race-1", "text": "Raced"}}
    responses = at_once(5, lambda _i: act(bridge.app.test_client(), bridge.token, UPSERT, body))
    assert [r.status_code for r in responses] == [200] * 5
    assert len(sim_documents(sim_app, datastore)) == before + 1
    assert len(upsert_calls(sim_admin)) == 1


def test_unknown_datastore_is_404(bridge):
    """Upserting into a datastore ZappWay does not know gives 404."""
    response = upsert(bridge, "cnotadatastore000000000000", document={"text": "x"})
    assert response.status_code == 404


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"document": {"text": "a"}, "documents": [{"text": "b"}]},
    ],
    ids=["neither", "both"],
)
def test_exactly_one_of_document_or_documents(client, connection, datastore, sim_admin, extra):
    """Neither or both of document/documents is a 422 naming document; nothing goes upstream."""
    response = act(client, connection["token"], UPSERT, {"datastore_id": datastore, **extra})
    error = response.get_json()["error"]
    assert response.status_code == 422
    assert "document" in error["fields"]
    assert "document" in error["message"]
    assert upsert_calls(sim_admin) == []


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"id": "x"}, "document.text"),
        ({"id": "x", "text": ""}, "document.text"),
        ({"text": "x", "url": "not a url"}, "document.url"),
        ({"text": "x", "colour": "red"}, "document.colour"),
        ({"text": "x", "metadata": {"tags": ["a"]}}, "document.metadata.tags.value"),
        ({"text": "x", "metadata": {"nested": {"b": 1}}}, "document.metadata.nested.value"),
        (5, "document"),
    ],
)
def test_bad_document_gets_422_naming_the_field(
    client, connection, datastore, sim_admin, document, field
):
    """A document missing its text, with a bad url, an unknown field, metadata ZappWay would not
    store (an object or a list: it was dropped silently) or not an object at all: 422 naming
    it, nothing sent."""
    response = act(
        client, connection["token"], UPSERT, {"datastore_id": datastore, "document": document}
    )
    error = response.get_json()["error"]
    assert response.status_code == 422
    assert error["fields"] == [field]
    assert field in error["message"]
    assert "_schema" not in error["message"] and "{" not in error["message"]
    assert len(error["message"]) < 250
    assert upsert_calls(sim_admin) == []


@pytest.mark.parametrize(
    ("documents", "field"),
    [
        ([{"id": "a", "text": "1"}, {"id": "b", "text": "2"}, {"id": "a", "text": "3"}],
         "documents.2.id"),
        ([{"id": "a", "text": "1"}, None], "documents.1"),
        ([{"id": "a", "text": "1"}, {"id": "b"}], "documents.1.text"),
    ],
)  # fmt: skip
def test_bad_batch_gets_422_naming_the_item(
    client, connection, datastore, sim_admin, documents, field
):
    """A batch repeating an id (two writes of one upstream document, both reported as written,
    the first lost), a null item or an item missing its text: 422 naming the item's field by
    its index, nothing sent."""
    body = {"datastore_id": datastore, "documents": documents}
    response = act(client, connection["token"], UPSERT, body)
    error = response.get_json()["error"]
    assert response.status_code == 422, error
    assert error["fields"] == [field]
    assert "{" not in error["message"]
    assert upsert_calls(sim_admin) == []


# --- delete -------------------------------------------------------------------------------------


def test_delete_by_document_id_removes_mapping_and_upstream_document(
    bridge, datastore, sim_app, sim_admin
):
    """Deleting by your id deletes the upstream document and forgets the mapping."""
    created = upsert(bridge, datastore, document={"id": "post-1", "text": "Bye"}).get_json()
    upstream_id = created["documents"][0]["upstream_id"]
    response = bridge.act(DELETE, {"datastore_id": datastore, "document_id": "post-1"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "deleted": True,
        "document_id": "post-1",
        "upstream_id": upstream_id,
    }
    assert upstream_id not in texts(sim_app, datastore)
    assert mapping_rows(bridge.app, datastore) == []
    assert len(calls(sim_admin, f"/datasources/{upstream_id}", "DELETE")) == 1


def test_delete_then_upsert_creates_a_new_document(bridge, datastore, sim_app):
    """After a delete, the same id and text are created again (no stale "unchanged")."""
    document = {"id": "post-1", "text": "Again"}
    upsert(bridge, datastore, document=document)
    bridge.act(DELETE, {"datastore_id": datastore, "document_id": "post-1"})
    body = upsert(bridge, datastore, document=document).get_json()
    assert body["documents"][0]["status"] == "created"
    assert texts(sim_app, datastore)[body["documents"][0]["upstream_id"]] == "Again"


def test_delete_of_a_document_already_gone_upstream(bridge, datastore, sim_app):
    """A document deleted in ZappWay's dashboard: deleted false, the mapping forgotten, no error."""
    created = upsert(bridge, datastore, document={"id": "post-1", "text": "Bye"}).get_json()
    upstream_id = created["documents"][0]["upstream_id"]
    delete_upstream(sim_app, upstream_id)
    response = bridge.act(DELETE, {"datastore_id": datastore, "document_id": "post-1"})
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "deleted": False,
        "document_id": "post-1",
        "upstream_id": upstream_id,
    }
    assert mapping_rows(bridge.app, datastore) == []


def test_delete_unknown_document_id_is_404(bridge, datastore, sim_admin):
    """An id never upserted through this connection gives 404, with no upstream call."""
    response = bridge.act(DELETE, {"datastore_id": datastore, "document_id": "never-seen"})
    assert response.status_code == 404
    assert calls(sim_admin, "/datasources/") == []


def test_delete_by_upstream_id(bridge, datastore, sim_app):
    """ZappWay's own id deletes a document the bridge never upserted."""
    seeded_doc = sim_documents(sim_app, datastore)[0].id
    response = bridge.act(DELETE, {"datastore_id": datastore, "upstream_id": seeded_doc})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["deleted"] is True
    assert seeded_doc not in texts(sim_app, datastore)


def test_delete_by_upstream_id_forgets_the_mapping(bridge, datastore, sim_app):
    """Deleting a mapped document by its upstream id lets the same content be created again."""
    document = {"id": "post-1", "text": "Same"}
    created = upsert(bridge, datastore, document=document).get_json()
    upstream_id = created["documents"][0]["upstream_id"]
    bridge.act(DELETE, {"datastore_id": datastore, "upstream_id": upstream_id})
    body = upsert(bridge, datastore, document=document).get_json()
    assert body["documents"][0]["status"] == "created"
    assert texts(sim_app, datastore)[body["documents"][0]["upstream_id"]] == "Same"


@pytest.mark.parametrize(
    "ids", [{}, {"document_id": "a", "upstream_id": "b"}], ids=["neither", "both"]
)
def test_delete_needs_exactly_one_id(client, connection, datastore, ids):
    """Neither or both of document_id/upstream_id is a 422 naming document_id."""
    response = act(client, connection["token"], DELETE, {"datastore_id": datastore, **ids})
    assert response.status_code == 422
    assert "document_id" in response.get_json()["error"]["fields"]
