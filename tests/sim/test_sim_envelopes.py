"""Response envelopes, error shapes and path forms of the two profiles."""


def test_documented_me_is_wrapped_in_data(client, headers, demo):
    """GET /api/v1/me answers the org inside {data} with the billing canary."""
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200
    org = response.json()["data"]
    assert org["id"] == demo["org"]["id"]
    assert org["currentPlan"] == "level_0"
    assert org["customerId"].startswith("CANARY-")
    assert set(org["usage"]) >= {"nbAgentQueries", "nbDatastoreQueries", "nbModelTokens"}


def test_documented_list_has_meta(client, headers):
    """Documented lists carry meta with page, limit and total."""
    body = client.get("/api/v1/agents", params={"limit": 1}, headers=headers).json()
    assert body["meta"] == {"page": 1, "limit": 1, "total": 2}
    assert len(body["data"]) == 1


def test_documented_routes_also_live_under_api(client, headers):
    """The documented profile serves /api as well as /api/v1."""
    assert client.get("/api/agents", headers=headers).json()["meta"]["total"] == 2


def test_documented_error_shape(client, headers):
    """Documented errors are {error: {code, message}}; unknown agents are 404."""
    response = client.get("/api/v1/agents/cnotanagent0000000000000", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_unknown_route_is_404_json_in_documented(client, headers):
    """An unknown documented route answers a JSON 404."""
    response = client.get("/api/v1/nothing/here", headers=headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_legacy_bodies_are_bare(client, headers, legacy):
    """Legacy lists are bare arrays without meta."""
    body = client.get("/api/agents", headers=headers).json()
    assert isinstance(body, list)
    assert {a["name"] for a in body} == {"Support Agent", "Public FAQ"}


def test_legacy_has_no_v1_prefix(client, headers, legacy):
    """The legacy profile has no /api/v1 routes; the framework answers an HTML 404."""
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


def test_legacy_aliases_absent_in_documented(client, headers, datastore_id):
    """Legacy-only paths (/api/logs, external upsert) are 404 in the documented profile."""
    assert client.get("/api/logs", headers=headers).status_code == 404
    path = f"/api/external/datastores/upsert/{datastore_id}"
    assert client.post(path, headers=headers, json={"documents": []}).status_code == 404


def test_legacy_missing_agent_is_null(client, headers, legacy):
    """Legacy GET of a missing agent answers 200 with a null body."""
    response = client.get("/api/agents/cmissing00000000000000000", headers=headers)
    assert response.status_code == 200
    assert response.json() is None


def test_legacy_missing_datastore_query_is_500(client, headers, legacy):
    """Legacy datastore query on a missing datastore answers 500 "Not found"."""
    response = client.post("/api/datastores/cnope/query", headers=headers, json={"query": "x"})
    assert response.status_code == 500
    assert response.json() == {"error": "Not found"}


def test_legacy_datastore_get_leaks_canary_keys(client, headers, datastore_id, legacy):
    """Legacy datastore objects carry API keys in clear (canary values)."""
    body = client.get(f"/api/datastores/{datastore_id}", headers=headers).json()
    assert body["apiKeys"][0]["key"].startswith("CANARY-")


def test_agent_objects_carry_subscription_canaries(client, headers, agent_id):
    """Agent objects include organization.subscriptions with canary billing ids."""
    agent = client.get(f"/api/v1/agents/{agent_id}", headers=headers).json()["data"]
    assert agent["organization"]["subscriptions"][0]["customerId"].startswith("CANARY-")
    assert agent["tools"][0]["type"] == "datastore"


def test_agent_get_by_handle(client, headers, agent_id):
    """GET /agents/@handle finds the agent, as in the ancestor."""
    agent = client.get("/api/v1/agents/@support", headers=headers).json()["data"]
    assert agent["id"] == agent_id


def test_ids_are_cuid_like(demo):
    """Seeded ids are 25 characters starting with c."""
    ids = [demo["org"]["id"], *(a["id"] for a in demo["agents"])]
    assert all(len(i) == 25 and i.startswith("c") for i in ids)


def test_same_seed_gives_same_ids():
    """Two apps with the same seed mint the same ids and keys."""
    import httpx

    from sim import create_app
    from sim.testing import SimAdmin

    seeds = []
    for _ in range(2):
        app = create_app({"seed": 3})
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://s") as c:
            seeds.append(SimAdmin(c).seed())
    assert seeds[0]["key"] == seeds[1]["key"]
    assert seeds[0]["agents"][0]["id"] == seeds[1]["agents"][0]["id"]
