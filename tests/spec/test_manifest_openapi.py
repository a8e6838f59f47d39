"""manifest.json and OpenAPI are generated from the registry and describe every action."""

from __future__ import annotations

import json

import pytest

from bridge.registry import ACTIONS, TRIGGERS
from bridge.spec.manifest import MANIFEST_PATH, manifest_text
from bridge.spec.openapi import build_openapi, operations
from bridge.web.api import endpoint_of
from tests.conftest import bearer


def test_committed_manifest_matches_the_registry():
    """The committed manifest.json equals the generated one (fix: `make manifest`)."""
    stale = "manifest.json is stale: run `make manifest`"
    assert MANIFEST_PATH.read_text() == manifest_text(ACTIONS, TRIGGERS), stale


def test_manifest_is_served(client):
    """GET /manifest.json serves the same document without authentication."""
    served = client.get("/manifest.json").get_json()
    assert served == json.loads(manifest_text(ACTIONS, TRIGGERS))


def test_every_route_is_declared_for_openapi(app):
    """Every route the app serves declares itself, so /openapi.json documents all of them."""
    undeclared = [
        rule.rule for rule in app.url_map.iter_rules()
        if endpoint_of(app.view_functions[rule.endpoint]) is None
    ]  # fmt: skip
    assert undeclared == []
    documented = {op.path for op in operations(app)}
    assert "/v1/triggers/new-conversation" not in documented  # an alias, documented once
    assert {"/v1/hooks/{subscription_id}", "/in/{token}", "/v1/admin/connections"} <= documented


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.key)
def test_every_action_meets_the_contract(action, client, connection):
    """Each action reads right, its SAMPLE round-trips through Output, and a body missing a
    required field gets a 422 naming that field."""
    assert action.label[0].isupper()
    assert action.description.endswith(".")
    assert action.output_schema(many=action.many).dump(action.sample) == action.sample
    required = [name for name, field in action.input_schema().fields.items() if field.required]
    response = client.post(
        f"/v1/actions/{action.key}", json={}, headers=bearer(connection["token"])
    )
    error = response.get_json()["error"]
    assert response.status_code == 422
    assert required[0] in error["message"]
    assert len(error["message"]) < 250


def test_authentication_comes_before_validation(client):
    """An unauthenticated call with a bad body gets 401, not 422: strangers cannot probe."""
    response = client.post(
        "/v1/actions/query_agent", json={}, headers={"X-API-Key": "zwb_" + "A" * 43}
    )
    assert response.status_code == 401


def test_openapi_lists_every_action_and_error_envelope(client):
    """/openapi.json is OpenAPI 3.1 with a path per action and the shared error envelope."""
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    for action in ACTIONS:
        operation = spec["paths"][f"/v1/actions/{action.key}"]["post"]
        assert operation["operationId"] == action.key
        assert "422" in operation["responses"]
    assert "ErrorEnvelope" in spec["components"]["schemas"]


def test_manifest_marks_dropdown_fields(client):
    """Fields holding agent and datastore ids point to their dropdown sources."""
    manifest = client.get("/manifest.json").get_json()
    query = next(a for a in manifest["actions"] if a["key"] == "query_agent")
    agent_field = next(f for f in query["input_fields"] if f["key"] == "agent_id")
    assert agent_field["dynamic"] == "agents"
    assert {d["path"] for d in manifest["dropdowns"]} == {"/v1/agents", "/v1/datastores"}


def test_a_path_parameter_the_view_checks_carries_its_pattern(app):
    """The inbound URL's event suffix is refused (400) outside its alphabet: the OpenAPI
    document says so, so a client built from it (schemathesis) does not send what is refused."""
    operation = build_openapi(app)["paths"]["/in/{token}/{event}"]["post"]
    (event,) = [p for p in operation["parameters"] if p["name"] == "event"]
    assert event["schema"] == {"type": "string", "pattern": "^[a-z0-9_.-]{1,64}$"}
