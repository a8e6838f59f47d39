"""The connection lifecycle over HTTP: register, authenticate, rotate, revoke, administer."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bridge.infra.models import Connection
from tests.conftest import ADMIN_TOKEN, bearer, random_key, runtime_of


def count_connections(app) -> int:
    with runtime_of(app).sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Connection)) or 0)


def test_create_returns_token_once_and_never_the_key(client, seeded):
    """Registering a valid key answers 201 with a token, the key's last 4, and the org."""
    response = client.post("/v1/connections", json={"api_key": seeded["key"], "label": "Zaps"})
    body = response.get_json()
    assert response.status_code == 201
    assert body["token"].startswith("zwb_")
    assert body["api_key_last4"] == seeded["key"][-4:]
    assert body["organization"]["id"] == seeded["org"]["id"]
    assert seeded["key"] not in response.get_data(as_text=True)
    me = client.get("/v1/me", headers=bearer(body["token"])).get_json()
    assert "token" not in me
    assert seeded["key"] not in str(me)


def test_key_is_trimmed_before_use(client, seeded):
    """Stray spaces and line breaks around a pasted key are removed (the upstream's 401 tip)."""
    response = client.post("/v1/connections", json={"api_key": f"  {seeded['key']}\n"})
    assert response.status_code == 201


def test_me_reports_connection_org_plan_and_last4(client, connection, seeded):
    """GET /v1/me is the platforms' auth test: id, label, org, last 4 of the key, plan."""
    body = client.get("/v1/me", headers=bearer(connection["token"])).get_json()
    assert body["id"] == connection["id"]
    assert body["label"] == "Tests"
    assert body["organization"] == {"id": seeded["org"]["id"], "name": seeded["org"]["name"]}
    assert body["api_key_last4"] == seeded["key"][-4:]
    assert body["plan"] == "free"
    assert body["rate_limit_per_minute"] == 60


def test_me_accepts_x_api_key_header(client, connection):
    """Tools that set a single custom header can send the token as X-API-Key."""
    response = client.get("/v1/me", headers={"X-API-Key": connection["token"]})
    assert response.status_code == 200


def test_me_does_not_call_upstream(client, connection, sim_admin):
    """The auth test is answered from storage: no upstream request is made."""
    before = len(sim_admin.requests())
    assert client.get("/v1/me", headers=bearer(connection["token"])).status_code == 200
    assert len(sim_admin.requests()) == before


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_credentials"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "malformed_credentials"),
        ({"Authorization": "Bearer"}, "malformed_credentials"),
        ({"Authorization": "Bearer not-a-token"}, "malformed_credentials"),
        ({"X-API-Key": "zwb_" + "A" * 43}, "unknown_credentials"),
    ],
)
def test_bad_credentials_get_401_saying_which(client, headers, code):
    """Missing, malformed and unknown credentials each get a 401 whose code says which."""
    response = client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revocation_takes_effect_on_the_next_request(client, connection):
    """After DELETE /v1/me the same token gets 401 revoked_credentials at once."""
    headers = bearer(connection["token"])
    assert client.delete("/v1/me", headers=headers).status_code == 204
    response = client.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "revoked_credentials"


def test_revocation_is_seen_by_another_process(make_app, connection, app):
    """A second app on the same database (another web process) refuses a revoked token at once."""
    other = make_app().test_client()
    headers = bearer(connection["token"])
    assert other.get("/v1/me", headers=headers).status_code == 200
    assert app.test_client().delete("/v1/me", headers=headers).status_code == 204
    assert other.get("/v1/me", headers=headers).status_code == 401


def test_rotate_token_invalidates_the_old_one(client, connection):
    """A rotated token works; the previous one is unknown from then on."""
    response = client.post("/v1/me/rotate-token", headers=bearer(connection["token"]))
    new_token = response.get_json()["token"]
    assert response.status_code == 200
    assert new_token != connection["token"]
    assert client.get("/v1/me", headers=bearer(new_token)).status_code == 200
    assert client.get("/v1/me", headers=bearer(connection["token"])).status_code == 401


def test_rotate_key_validates_then_swaps(client, connection, sim_admin, seeded):
    """A new key of the same org is verified upstream, then swapped in; last 4 updates."""
    new_key = sim_admin.create_key(seeded["org"]["id"])
    response = client.post(
        "/v1/me/rotate-key", headers=bearer(connection["token"]), json={"api_key": new_key}
    )
    assert response.status_code == 200
    assert response.get_json()["api_key_last4"] == new_key[-4:]


def test_rotate_key_with_rejected_key_changes_nothing(client, connection, seeded):
    """A key ZappWay rejects gives 422 naming api_key, and the old key stays in place."""
    response = client.post(
        "/v1/me/rotate-key", headers=bearer(connection["token"]), json={"api_key": random_key()}
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == ["api_key"]
    me = client.get("/v1/me", headers=bearer(connection["token"])).get_json()
    assert me["api_key_last4"] == seeded["key"][-4:]


def test_rotate_key_refuses_another_organization(client, connection, sim_admin):
    """Swapping in a key of a different organization is refused (it would be another tenant)."""
    other_org = sim_admin.create_org("Other Org")
    other_key = sim_admin.create_key(other_org["id"])
    response = client.post(
        "/v1/me/rotate-key", headers=bearer(connection["token"]), json={"api_key": other_key}
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "different_organization"


def test_rejected_key_is_not_stored(client, app):
    """A key ZappWay refuses gives 422 and no row is written."""
    response = client.post("/v1/connections", json={"api_key": random_key()})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "api_key_rejected"
    assert count_connections(app) == 0


def test_revoked_upstream_key_is_refused_at_creation(client, app, sim_admin, seeded):
    """A key revoked at ZappWay cannot be registered."""
    sim_admin.revoke_key(seeded["key"])
    response = client.post("/v1/connections", json={"api_key": seeded["key"]})
    assert response.status_code == 422
    assert count_connections(app) == 0


def test_unreachable_upstream_gives_503_and_stores_nothing(make_app, seeded):
    """When ZappWay cannot be reached the answer is 503 and nothing is stored."""
    app = make_app(transport=None, upstream_base_url="http://127.0.0.1:9/api/v1")
    response = app.test_client().post("/v1/connections", json={"api_key": seeded["key"]})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "upstream_unavailable"
    assert count_connections(app) == 0


def test_upstream_5xx_gives_502_and_stores_nothing(client, app, sim_admin, seeded):
    """ZappWay answering 500 on /me gives 502 (not 401) and nothing is stored."""
    sim_admin.add_fault("status", status=500, path="/me")
    response = client.post("/v1/connections", json={"api_key": seeded["key"]})
    assert response.status_code == 502
    assert count_connections(app) == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "api_key"),
        ({"api_key": 123}, "api_key"),
        ({"api_key": ""}, "api_key"),
        ({"api_key": "zw key with spaces"}, "api_key"),
        ({"api_key": "k", "plan": "platinum"}, "plan"),
        ({"api_key": "k", "label": ["x"]}, "label"),
        ({"api_key": "k", "surprise": 1}, "surprise"),
    ],
)
def test_bad_input_gets_422_naming_the_field(client, payload, field):
    """Wrong types, missing or unknown fields: 422 whose message names the field, < 250 chars."""
    response = client.post("/v1/connections", json=payload)
    error = response.get_json()["error"]
    assert response.status_code == 422
    assert field in error["message"]
    assert len(error["message"]) < 250


def test_malformed_json_gets_400(client):
    """A body that is not JSON gets 400, not 500."""
    response = client.post(
        "/v1/connections", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_json"


def test_oversized_body_gets_413(client):
    """Bodies over the configured limit are refused with 413 in the JSON envelope."""
    response = client.post("/v1/connections", json={"api_key": "k" * 2_000_000})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_unknown_route_and_method_are_json(client):
    """404 and 405 use the same JSON envelope."""
    assert client.get("/nope").get_json()["error"]["code"] == "not_found"
    assert client.put("/v1/connections").status_code == 405


def test_self_registration_can_be_turned_off(make_app, seeded):
    """With self-registration off, only the admin token may create connections."""
    client = make_app(allow_self_registration=False).test_client()
    refused = client.post("/v1/connections", json={"api_key": seeded["key"]})
    assert refused.status_code == 403
    allowed = client.post(
        "/v1/connections", json={"api_key": seeded["key"]}, headers=bearer(ADMIN_TOKEN)
    )
    assert allowed.status_code == 201


def test_admin_lists_and_revokes_connections(client, connection):
    """Operators list connections (no secrets) and revoke one with the admin token."""
    assert client.get("/v1/admin/connections").status_code == 401
    assert client.get("/v1/admin/connections", headers=bearer("wrong" * 8)).status_code == 401
    listing = client.get("/v1/admin/connections", headers=bearer(ADMIN_TOKEN))
    assert [row["id"] for row in listing.get_json()] == [connection["id"]]
    assert "token" not in listing.get_json()[0]
    revoke = client.delete(f"/v1/admin/connections/{connection['id']}", headers=bearer(ADMIN_TOKEN))
    assert revoke.status_code == 204
    assert client.get("/v1/me", headers=bearer(connection["token"])).status_code == 401
    assert client.get("/v1/admin/connections", headers=bearer(ADMIN_TOKEN)).get_json() == []


def test_admin_api_disabled_without_token(make_app):
    """With no BRIDGE_ADMIN_TOKEN the admin API answers 403 and says how to enable it."""
    client = make_app(admin_token="").test_client()
    response = client.get("/v1/admin/connections", headers=bearer("anything"))
    assert response.status_code == 403
    assert "BRIDGE_ADMIN_TOKEN" in response.get_json()["error"]["message"]


def test_verify_flags_a_key_revoked_upstream(client, connection, sim_admin, seeded):
    """`/v1/me?verify=1` re-checks the key; a key revoked at ZappWay gives 401 and is flagged."""
    sim_admin.revoke_key(seeded["key"])
    response = client.get("/v1/me?verify=1", headers=bearer(connection["token"]))
    assert response.status_code == 401
    assert "rotate it" in response.get_json()["error"]["message"]
    assert (
        client.get("/v1/me", headers=bearer(connection["token"])).get_json()["key_status"]
        == "rejected"
    )


@pytest.mark.parametrize(
    ("key", "shown"), [("k9Z", ""), ("k9Z2", "2"), ("k9Z2abcd", "cd"), ("k9Z2abcdefgh", "fgh")]
)
def test_a_short_key_shows_at_most_a_quarter_of_itself(client, seeded, sim_admin, key, shown):
    """ZappWay's key format is unstated, so a short key is accepted; its "last 4" then shows at
    most a quarter of it (a 4-character key showed itself whole, in /v1/me, listings and the
    console)."""
    sim_admin.create_key(seeded["org"]["id"], key=key)
    created = client.post("/v1/connections", json={"api_key": key})
    assert created.status_code == 201, created.get_json()
    me = client.get("/v1/me", headers=bearer(created.get_json()["token"])).get_json()
    assert me["api_key_last4"] == shown
    assert created.get_json()["api_key_last4"] == shown


@pytest.mark.parametrize("plan", [120, "120", "pro"])
def test_plan_is_free_pro_or_a_number_string_or_not(client, seeded, plan):
    """The README says `plan` is free, pro or a number: a JSON number is accepted too."""
    created = client.post("/v1/connections", json={"api_key": seeded["key"], "plan": plan})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["plan"] == str(plan)


@pytest.mark.parametrize("plan", [0, True, 1.5, "enterprise"])
def test_a_plan_that_is_not_free_pro_or_a_whole_number_is_422(client, seeded, plan):
    refused = client.post("/v1/connections", json={"api_key": seeded["key"], "plan": plan})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["fields"] == ["plan"]


def test_me_refuses_a_verify_value_it_does_not_know(client, connection):
    """`verify` is 0, 1, true or false (as documented); anything else is a 422 naming it, not a
    silent "no"."""
    answer = client.get("/v1/me?verify=AAA", headers=bearer(connection["token"]))
    assert answer.status_code == 422
    assert answer.get_json()["error"]["fields"] == ["verify"]
    assert client.get("/v1/me?verify=0", headers=bearer(connection["token"])).status_code == 200
    cache_busted = client.get("/v1/me?_=1733560000", headers=bearer(connection["token"]))
    assert cache_busted.status_code == 200  # a parameter it does not know is ignored
