"""Key parsing, key failures per profile, revocation and tenancy."""

import pytest


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer nope", "Bearer", "Token {key}", "Bearer  {key}"],
)
def test_documented_key_failures_are_401(client, demo, authorization):
    """Missing, unknown, wrong-scheme and double-space keys answer 401 JSON."""
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(key=demo["key"])
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_documented_public_agent_still_needs_a_key(client, demo):
    """The documented profile never serves anonymously, even public agents."""
    public_id = demo["agents"][1]["id"]
    assert client.get(f"/api/v1/agents/{public_id}").status_code == 401


def test_legacy_strict_route_answers_plain_forbidden(client, legacy):
    """A bad key on a legacy strict route answers 403 text/plain "Forbidden"."""
    response = client.get("/api/me", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Forbidden"


def test_legacy_ignores_the_scheme_word(client, demo, legacy):
    """The ancestor takes the second token whatever the scheme word is."""
    response = client.get("/api/me", headers={"Authorization": f"Token {demo['key']}"})
    assert response.status_code == 200


def test_legacy_public_agent_answers_anonymously(client, demo, legacy):
    """A lazy legacy route serves a public agent with a bad key."""
    public_id = demo["agents"][1]["id"]
    response = client.post(
        f"/api/agents/{public_id}/query",
        headers={"Authorization": "Bearer revoked-or-bogus"},
        json={"query": "hi"},
    )
    assert response.status_code == 200
    assert response.json()["answer"].startswith("turn 1 of conversation")


def test_legacy_private_agent_without_key_is_403_json(client, agent_id, legacy):
    """A private agent on a lazy legacy route answers 403 {"error": "UNAUTHORIZED"}."""
    response = client.get(f"/api/agents/{agent_id}")
    assert response.status_code == 403
    assert response.json() == {"error": "UNAUTHORIZED"}


def test_revocation_is_immediate(client, admin, headers, demo):
    """A revoked key fails on the very next request."""
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    admin.revoke_key(demo["key"])
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_second_key_of_same_org_is_equal(client, admin, demo):
    """Several keys per org all work."""
    key = admin.create_key(demo["org"]["id"])
    assert key.startswith("zw_live_") and len(key) == 40
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert response.json()["data"]["id"] == demo["org"]["id"]


def test_cross_org_access_is_403(client, admin, agent_id):
    """A valid key of another org gets 403 on the first org's agent."""
    other = admin.create_org("Other", "pro")
    key = admin.create_key(other["id"])
    response = client.get(f"/api/v1/agents/{agent_id}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
