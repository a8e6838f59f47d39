"""Search Datastore (a search: bare array, `[]` when nothing matches) and the dropdown sources."""

from __future__ import annotations

from typing import Any

import pytest

from tests.actions_helpers import PROFILES, Bridge, act, build, calls

SEARCH = "query_datastore"
RESULT_KEYS = {"text", "score", "source", "datasource_id", "datasource_name", "custom_id"}


@pytest.fixture(params=PROFILES)
def bridge(request, make_app, sim_admin, seeded) -> Bridge:
    """A bridge and a connection for each upstream profile (the simulator switched to match)."""
    sim_admin.set_profile(request.param)
    return build(make_app, seeded["key"], request.param)


@pytest.fixture
def datastore(seeded) -> str:
    """The seeded "Help Center" datastore: a returns FAQ and a shipping page."""
    datastore_id: str = seeded["datastores"][0]["id"]
    return datastore_id


def search(bridge: Bridge, datastore: str, query: str, **extra: Any):
    return bridge.act(SEARCH, {"datastore_id": datastore, "query": query, **extra})


def search_calls(sim_admin) -> list[dict[str, Any]]:
    return calls(sim_admin, "/query", "POST")


# --- query_datastore ----------------------------------------------------------------------------


def test_matching_query_gives_passages_best_first(bridge, datastore):
    """A query sharing words with a document returns it first, as a bare array of passages."""
    response = search(bridge, datastore, "return window")
    body = response.get_json()
    assert response.status_code == 200, body
    assert isinstance(body, list)
    assert body
    assert set(body[0]) == RESULT_KEYS
    assert body[0]["datasource_name"] == "Returns FAQ"
    assert body[0]["custom_id"] == "returns-policy"
    assert body[0]["text"].startswith("Our return window is 30 days")
    assert body[0]["score"] == 1.0
    scores = [item["score"] for item in body]
    assert scores == sorted(scores, reverse=True)


def test_no_match_is_an_empty_array(bridge, datastore):
    """A query no passage matches answers 200 `[]`, so a search-or-create step creates."""
    response = search(bridge, datastore, "zebra quantum")
    assert response.status_code == 200
    assert response.get_json() == []


def test_unknown_datastore_is_an_empty_array(bridge, sim_admin):
    """A search of a datastore ZappWay does not know is "nothing found" (200 `[]`), not 404."""
    response = search(bridge, "cnotadatastore000000000000", "return window")
    assert response.status_code == 200
    assert response.get_json() == []
    assert len(search_calls(sim_admin)) == 1


def test_top_k_given_as_a_string_is_sent_as_a_number(bridge, datastore, sim_admin):
    """Zapier sends numbers as strings; "3" is accepted and reaches ZappWay as 3 (legacy: 400)."""
    response = search(bridge, datastore, "return window", top_k="3")
    assert response.status_code == 200, response.get_json()
    (sent,) = search_calls(sim_admin)
    assert sent["body"]["topK"] == 3


def test_top_k_limits_the_results(client, connection, datastore):
    """top_k 1 returns at most one passage."""
    body = {"datastore_id": datastore, "query": "our orders ship", "top_k": 1}
    response = act(client, connection["token"], SEARCH, body)
    assert len(response.get_json()) == 1


@pytest.mark.parametrize("top_k", [0, -1, 51, "three", "3.5"])
def test_bad_top_k_is_422(client, connection, datastore, sim_admin, top_k):
    """top_k outside 1..50 or not a whole number is a 422 naming top_k; nothing goes upstream."""
    body = {"datastore_id": datastore, "query": "return", "top_k": top_k}
    response = act(client, connection["token"], SEARCH, body)
    error = response.get_json()["error"]
    assert response.status_code == 422
    assert error["fields"] == ["top_k"]
    assert "top_k" in error["message"]
    assert search_calls(sim_admin) == []


def test_missing_query_is_422(client, connection, datastore):
    """The query is required."""
    response = act(client, connection["token"], SEARCH, {"datastore_id": datastore})
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == ["query"]


def test_custom_id_filter_is_forwarded(client, connection, datastore, sim_admin):
    """filters.custom_ids narrows the search to those documents."""
    body = {
        "datastore_id": datastore,
        "query": "our orders return window",
        "filters": {"custom_ids": ["shipping-policy"]},
    }
    response = act(client, connection["token"], SEARCH, body)
    assert [item["custom_id"] for item in response.get_json()] == ["shipping-policy"]
    assert search_calls(sim_admin)[0]["body"]["filters"] == {"custom_ids": ["shipping-policy"]}


def test_a_transient_5xx_on_a_search_is_retried(bridge, datastore, sim_admin):
    """A search is idempotent: one 500 is retried and the caller sees the results."""
    sim_admin.add_fault("status", status=500, path="/query$", times=1)
    response = search(bridge, datastore, "return window")
    assert response.status_code == 200
    assert response.get_json()[0]["datasource_name"] == "Returns FAQ"
    assert [r["status"] for r in search_calls(sim_admin)] == [500, 200]


# --- dropdown sources ---------------------------------------------------------------------------


def test_agents_dropdown_lists_id_and_name(bridge, seeded):
    """`GET /v1/agents` is `[{id, name}]`, every agent of the key's organization."""
    response = bridge.get("/v1/agents")
    assert response.status_code == 200
    expected = {(a["id"], a["name"]) for a in seeded["agents"]}
    assert {(a["id"], a["name"]) for a in response.get_json()} == expected
    assert all(set(item) == {"id", "name"} for item in response.get_json())
    assert response.headers["X-Total-Count"] == "2"


def test_agents_dropdown_as_options(bridge, seeded):
    """`?format=options` gives `[{label, value}]` (Make RPCs, Pipedream, Activepieces)."""
    response = bridge.get("/v1/agents", format="options")
    expected = {(a["name"], a["id"]) for a in seeded["agents"]}
    assert {(o["label"], o["value"]) for o in response.get_json()} == expected
    assert all(set(item) == {"label", "value"} for item in response.get_json())


def test_datastores_dropdown_both_formats(bridge, seeded):
    """`GET /v1/datastores` lists the organization's datastores in both formats."""
    (datastore,) = seeded["datastores"]
    items = bridge.get("/v1/datastores").get_json()
    options = bridge.get("/v1/datastores", format="options").get_json()
    assert items == [{"id": datastore["id"], "name": "Help Center"}]
    assert options == [{"label": "Help Center", "value": datastore["id"]}]


def test_dropdown_pages_with_total_count(bridge, seeded):
    """`?page=&limit=` slice the list; X-Total-Count is the full count on every page."""
    full = [item["id"] for item in bridge.get("/v1/agents").get_json()]
    pages = [bridge.get("/v1/agents", page=page, limit=1) for page in (1, 2, 3)]
    assert [[item["id"] for item in p.get_json()] for p in pages] == [[full[0]], [full[1]], []]
    assert [p.headers["X-Total-Count"] for p in pages] == ["2", "2", "2"]


def test_dropdown_gathers_every_upstream_page(bridge, sim_admin, seeded):
    """Past 100 agents the bridge follows the upstream's pages (documented) or its one list."""
    for n in range(120):
        sim_admin.create_agent(seeded["org"]["id"], f"Agent {n:03d}")
    response = bridge.get("/v1/agents", limit=500)
    assert response.headers["X-Total-Count"] == "122"
    assert len({item["id"] for item in response.get_json()}) == 122


def test_dropdown_shows_only_the_connections_organization(bridge, sim_admin):
    """Another organization's agents never appear in this connection's dropdown."""
    other = sim_admin.create_org("Other Org")
    sim_admin.create_agent(other["id"], "Not yours")
    names = [item["name"] for item in bridge.get("/v1/agents").get_json()]
    assert "Not yours" not in names


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"page": "two"}, "page"), ({"format": "xml"}, "format")],
)
def test_bad_dropdown_parameters_are_422(client, connection, params, field):
    """A bad page, limit or format is a 422 naming the parameter."""
    response = client.get(
        "/v1/agents", query_string=params, headers={"X-API-Key": connection["token"]}
    )
    assert response.status_code == 422
    assert field in response.get_json()["error"]["message"]


def test_dropdown_needs_a_connection_token(client):
    """Without a token the dropdown is a 401 like every other route."""
    response = client.get("/v1/agents")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "missing_credentials"


def test_dropdown_with_a_key_revoked_upstream_is_401(bridge, sim_admin, seeded):
    """The list routes check the key strictly, so a revoked key is a 401 in both profiles."""
    sim_admin.revoke_key(seeded["key"])
    response = bridge.get("/v1/datastores")
    assert response.status_code == 401
    assert "rotate it" in response.get_json()["error"]["message"]
