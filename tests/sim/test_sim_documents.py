"""Upsert semantics per profile, the indexing lifecycle, datastore queries and body limits."""

import httpx
import pytest

DOC = {"id": "wp-post-42", "text": "Blue widgets ship in two days.", "metadata": {"source": "cms"}}


def _upsert(client, headers, datastore_id, documents, prefix="/api/v1"):
    return client.post(
        f"{prefix}/datastores/{datastore_id}/upsert", headers=headers, json={"documents": documents}
    )


def _count(client, headers, datastore_id):
    stores = client.get("/api/v1/datastores", headers=headers).json()["data"]
    return next(s for s in stores if s["id"] == datastore_id)["_count"]["datasources"]


def test_documented_upsert_is_idempotent(client, headers, datastore_id):
    """Re-sending a document id replaces it: same upstream id, count unchanged, 201 then 200."""
    first = _upsert(client, headers, datastore_id, [DOC])
    second = _upsert(client, headers, datastore_id, [{**DOC, "text": "Blue widgets ship today."}])
    assert first.status_code == 201
    assert second.status_code == 200
    assert first.json()["data"]["ids"] == second.json()["data"]["ids"]
    assert _count(client, headers, datastore_id) == 3


def test_upsert_ids_follow_input_order(client, headers, datastore_id):
    """The ids list has one id per document, in input order."""
    docs = [{"id": f"d{i}", "text": f"text {i}"} for i in range(3)]
    ids = _upsert(client, headers, datastore_id, docs).json()["data"]["ids"]
    again = _upsert(client, headers, datastore_id, list(reversed(docs))).json()["data"]["ids"]
    assert again == list(reversed(ids))


def test_legacy_upsert_duplicates(client, headers, datastore_id, legacy):
    """Legacy upsert ignores ids: every call mints new ids and the document count grows."""
    path = f"/api/external/datastores/upsert/{datastore_id}"
    doc = {"id": "wp-post-42", "text": "Blue widgets."}
    first = client.post(path, headers=headers, json={"documents": [doc]})
    second = client.post(path, headers=headers, json={"documents": [doc]})
    assert first.status_code == second.status_code == 200
    assert first.json()["ids"] != second.json()["ids"]
    stores = client.get("/api/datastores", headers=headers).json()
    assert stores[0]["_count"]["datasources"] == 4


def test_legacy_alias_without_api_prefix(client, headers, datastore_id, legacy):
    """The legacy upsert also answers at /datastores/upsert/<id>."""
    response = client.post(
        f"/datastores/upsert/{datastore_id}", headers=headers, json={"documents": [{"text": "x"}]}
    )
    assert response.status_code == 200


def test_legacy_free_form_metadata_is_400_with_details(client, headers, datastore_id, legacy):
    """Legacy rejects free-form metadata keys with 400 and zod-like details."""
    response = client.post(
        f"/api/external/datastores/upsert/{datastore_id}",
        headers=headers,
        json={"documents": [DOC]},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "error invalid request body"
    assert body["details"]["issues"][0]["code"] == "unrecognized_keys"


def test_legacy_public_datastore_upsert_needs_no_key(client, admin, demo, legacy):
    """Upsert into a public datastore works with no key at all in legacy."""
    public = admin.create_datastore(demo["org"]["id"], "Open", visibility="public")
    response = client.post(
        f"/api/external/datastores/upsert/{public['id']}", json={"documents": [{"text": "x"}]}
    )
    assert response.status_code == 200


def test_legacy_update_replaces_and_rejects_unknown(client, headers, datastore_id, legacy):
    """The legacy update route replaces by upstream id and answers 403 for unknown ids."""
    path = f"/api/external/datastores/update/{datastore_id}"
    upsert = f"/api/external/datastores/upsert/{datastore_id}"
    doc_id = client.post(upsert, headers=headers, json={"documents": [{"text": "old"}]}).json()[
        "ids"
    ][0]
    assert client.post(path, headers=headers, json={"id": doc_id, "text": "new"}).json() == {
        "id": doc_id
    }
    response = client.post(path, headers=headers, json={"id": "cunknown", "text": "new"})
    assert response.status_code == 403


def test_indexing_goes_pending_then_synched(client, admin, headers, datastore_id):
    """A new document is pending, running half-way, then synched after the delay."""
    admin.settings(indexing_delay_s=10)
    doc_id = _upsert(client, headers, datastore_id, [DOC]).json()["data"]["ids"][0]
    statuses = []
    for step in (0, 6, 5):
        admin.advance_clock(step)
        doc = client.get(f"/api/v1/datasources/{doc_id}", headers=headers).json()["data"]
        statuses.append(doc["status"])
    assert statuses == ["pending", "running", "synched"]
    assert doc["nbChunks"] >= 1


def test_indexing_can_end_in_error(client, admin, headers, datastore_id):
    """The indexing_result switch makes new documents end in error."""
    admin.settings(indexing_delay_s=0, indexing_result="error")
    doc_id = _upsert(client, headers, datastore_id, [DOC]).json()["data"]["ids"][0]
    doc = client.get(f"/api/v1/datasources/{doc_id}", headers=headers).json()["data"]
    assert doc["status"] == "error"


def test_delete_returns_the_record_then_404(client, headers, datastore_id):
    """DELETE returns the deleted document; a later GET is 404."""
    doc_id = _upsert(client, headers, datastore_id, [DOC]).json()["data"]["ids"][0]
    deleted = client.delete(f"/api/v1/datasources/{doc_id}", headers=headers)
    assert deleted.json()["data"]["id"] == doc_id
    assert client.get(f"/api/v1/datasources/{doc_id}", headers=headers).status_code == 404


def test_legacy_missing_datasource_is_500_unauthorized(client, headers, legacy):
    """Legacy GET of an unknown datasource answers 500 "Unauthorized"."""
    response = client.get("/api/datasources/cnothing", headers=headers)
    assert (response.status_code, response.json()) == (500, {"error": "Unauthorized"})


def test_query_scores_and_top_k(client, headers, datastore_id):
    """Datastore queries rank by word overlap and return at most topK results."""
    response = client.post(
        f"/api/v1/datastores/{datastore_id}/query",
        headers=headers,
        json={"query": "return window days", "topK": 1},
    )
    results = response.json()["data"]
    assert len(results) == 1
    assert results[0]["datasource_name"] == "Returns FAQ"
    assert results[0]["score"] == 1.0


def test_query_filters_by_custom_id(client, headers, datastore_id):
    """filters.custom_ids restricts results to the named documents."""
    response = client.post(
        f"/api/v1/datastores/{datastore_id}/query",
        headers=headers,
        json={"query": "return", "filters": {"custom_ids": ["shipping-policy"]}},
    )
    assert [r["custom_id"] for r in response.json()["data"]] == ["shipping-policy"]


def test_legacy_string_top_k_is_400(client, headers, datastore_id, legacy):
    """Legacy answers 400 to a string topK; documented coerces a digit string."""
    body = {"query": "return", "topK": "2"}
    assert (
        client.post(f"/api/datastores/{datastore_id}/query", headers=headers, json=body).status_code
        == 400
    )
    legacy.set_profile("documented")
    response = client.post(f"/api/v1/datastores/{datastore_id}/query", headers=headers, json=body)
    assert len(response.json()["data"]) == 2


@pytest.mark.parametrize("profile", ["documented", "legacy"])
def test_body_over_one_megabyte_is_413(client, admin, headers, datastore_id, profile):
    """A JSON body over 1 MB answers 413 in both profiles."""
    admin.set_profile(profile)
    path = {
        "documented": f"/api/v1/datastores/{datastore_id}/upsert",
        "legacy": f"/api/external/datastores/upsert/{datastore_id}",
    }[profile]
    big = {"documents": [{"text": "x" * (1024 * 1024)}]}
    assert client.post(path, headers=headers, json=big).status_code == 413


def test_max_documents_per_upsert(client, admin, headers, datastore_id):
    """The optional per-request document cap answers 400."""
    admin.settings(max_documents_per_upsert=1)
    response = _upsert(client, headers, datastore_id, [{"text": "a"}, {"text": "b"}])
    assert response.status_code == 400


def test_datastore_lists_its_documents_newest_first_with_search_and_pages(
    client, headers, datastore_id
):
    """GET /datastores/<id> lists the documents (`datasources`), narrowed by `search` on the
    name (any case) and paged by `offset` (pages) and `limit`, as the ancestor does."""
    docs = [{"id": f"k{n}", "text": f"text {n}", "name": f"Post {n}"} for n in range(3)]
    ids = _upsert(client, headers, datastore_id, docs).json()["data"]["ids"]
    url = f"/api/v1/datastores/{datastore_id}"
    found = client.get(url, headers=headers, params={"search": "post"}).json()["data"]
    assert [d["id"] for d in found["datasources"]] == list(reversed(ids))
    assert found["datasources"][0]["config"]["custom_id"] == "k2"
    one = client.get(url, headers=headers, params={"search": "POST 1"}).json()["data"]
    assert [d["name"] for d in one["datasources"]] == ["Post 1"]
    paged = client.get(url, headers=headers, params={"search": "post", "offset": 1, "limit": 2})
    assert [d["id"] for d in paged.json()["data"]["datasources"]] == [ids[0]]


def test_legacy_datastore_lists_documents_by_name(client, headers, datastore_id, legacy):
    """The legacy datastore answer lists the documents too (a bare body), found by name."""
    path = f"/api/external/datastores/upsert/{datastore_id}"
    client.post(path, headers=headers, json={"documents": [{"text": "x", "name": "Only me"}]})
    body = client.get(
        f"/api/datastores/{datastore_id}", headers=headers, params={"search": "only me"}
    ).json()
    assert [d["name"] for d in body["datasources"]] == ["Only me"]


def test_reset_after_headers_on_upsert_still_stores_the_document(
    admin, served, headers, datastore_id
):
    """A `reset` fault after the headers drops the connection mid-answer over real HTTP, but
    the upsert has run: the document is stored though the client saw no answer."""
    admin.add_fault("reset", path="/upsert$", times=1, after_headers=True)
    with httpx.Client(base_url=served) as http:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            http.post(
                f"/api/v1/datastores/{datastore_id}/upsert",
                headers=headers,
                json={"documents": [{"id": "lost", "text": "applied anyway"}]},
            )
        listed = http.get(f"/api/v1/datastores/{datastore_id}", headers=headers).json()["data"]
    assert [d["config"]["custom_id"] for d in listed["datasources"]].count("lost") == 1
