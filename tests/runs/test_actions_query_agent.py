"""The Query Agent action: answers, continuity, takeover, approvals, input checks, upstream faults.

Every call goes through `POST /v1/actions/query_agent` to the simulator, in both upstream
profiles where the upstream behaves differently (paths, envelopes, key failures, quirks).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.actions_helpers import PROFILES, Bridge, act, build, calls
from tests.conftest import bearer

ACTION = "query_agent"
OUTPUT_KEYS = {
    "answer",
    "status",
    "conversation_id",
    "visitor_id",
    "message_id",
    "sources",
    "usage",
}


@pytest.fixture(params=PROFILES)
def bridge(request, make_app, sim_admin, seeded) -> Bridge:
    """A bridge and a connection for each upstream profile (the simulator switched to match)."""
    sim_admin.set_profile(request.param)
    return build(make_app, seeded["key"], request.param)


@pytest.fixture
def agent(seeded) -> str:
    """The seeded private "Support Agent", whose datastore holds the returns and shipping FAQ."""
    agent_id: str = seeded["agents"][0]["id"]
    return agent_id


def ask(bridge: Bridge, agent: str, query: str = "Hello", **extra: Any):
    return bridge.act(ACTION, {"agent_id": agent, "query": query, **extra})


def query_calls(sim_admin) -> list[dict[str, Any]]:
    return calls(sim_admin, "/query", "POST")


# --- answers ------------------------------------------------------------------------------------


def test_answer_and_a_second_turn_in_the_same_conversation(bridge, agent):
    """The first call starts a conversation; sending its id back makes the next answer turn 2."""
    first = ask(bridge, agent, "Where is my order?")
    body = first.get_json()
    assert first.status_code == 200, body
    assert set(body) == OUTPUT_KEYS
    assert body["status"] == "answered"
    conversation = body["conversation_id"]
    assert body["answer"] == f"turn 1 of conversation {conversation}: Where is my order?"
    assert body["message_id"]
    second = ask(bridge, agent, "And now?", conversation_id=conversation).get_json()
    assert second["conversation_id"] == conversation
    assert second["answer"] == f"turn 2 of conversation {conversation}: And now?"
    assert second["visitor_id"] == body["visitor_id"]
    assert second["message_id"] != body["message_id"]


def test_sources_and_usage_come_back_allow_listed(bridge, agent):
    """Sources name the datastore passage that matched; usage carries the token counts."""
    body = ask(bridge, agent, "What is the return window?").get_json()
    names = [source["datasource_name"] for source in body["sources"]]
    assert names[0] == "Returns FAQ"
    assert body["sources"][0]["source_url"] == "https://example.com/returns"
    assert 0 < body["sources"][0]["score"] <= 1
    assert set(body["usage"]) == {"completionTokens", "promptTokens", "totalTokens", "cost"}
    assert body["usage"]["totalTokens"] > 0


def test_human_takeover_is_a_status_with_a_null_answer(bridge, agent, sim_admin, seeded):
    """With AI disabled on the conversation: 200, status human_takeover, answer and message null."""
    conversation = seeded["conversations"][0]["id"]
    sim_admin.set_ai_enabled(conversation, False)
    response = ask(bridge, agent, "Anyone there?", conversation_id=conversation)
    body = response.get_json()
    assert response.status_code == 200, body
    assert set(body) == OUTPUT_KEYS
    assert body["status"] == "human_takeover"
    assert body["answer"] is None
    assert body["message_id"] is None
    assert body["conversation_id"] == conversation
    assert body["sources"] == []


def test_pending_approval_is_a_status_not_an_empty_answer(bridge, sim_admin, seeded):
    """An agent waiting for a tool approval answers "" upstream: status pending_approval."""
    approver = sim_admin.create_agent(seeded["org"]["id"], "Approver", pending_approval=True)
    response = ask(bridge, approver["id"], "Book a meeting")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "pending_approval"
    assert body["answer"] == ""
    assert body["usage"] == {}


def test_blank_optional_fields_from_zapier_are_ignored(client, connection, agent, sim_admin):
    """Optional fields sent as "" (a blank Zapier field) are dropped, not validated or forwarded."""
    blanks = {
        "conversation_id": "",
        "visitor_id": "",
        "temperature": "",
        "model_name": "",
        "max_tokens": "",
        "system_prompt": "",
        "contact": "",
        "callback_url": "",
    }
    response = act(
        client, connection["token"], ACTION, {"agent_id": agent, "query": "Hi", **blanks}
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "answered"
    (sent,) = query_calls(sim_admin)
    assert sent["body"] == {"query": "Hi", "streaming": False}


def test_settings_and_contact_are_forwarded_under_upstream_names(
    client, connection, agent, sim_admin
):
    """Model settings and the contact reach ZappWay as camelCase fields."""
    payload = {
        "agent_id": agent,
        "query": "Hi",
        "temperature": "0.2",
        "model_name": "gpt_4o",
        "max_tokens": 300,
        "visitor_id": "visitor-7",
        "contact": {"email": "ada@example.com", "first_name": "Ada"},
    }
    assert act(client, connection["token"], ACTION, payload).status_code == 200
    (sent,) = query_calls(sim_admin)
    assert sent["body"]["temperature"] == 0.2
    assert sent["body"]["modelName"] == "gpt_4o"
    assert sent["body"]["maxTokens"] == 300
    assert sent["body"]["visitorId"] == "visitor-7"
    assert sent["body"]["contact"]["email"] == "ada@example.com"
    assert sent["body"]["contact"]["firstName"] == "Ada"


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"query": "Hi"}, "agent_id"),
        ({"agent_id": "AGENT"}, "query"),
        ({"agent_id": "AGENT", "query": ""}, "query"),
        ({"agent_id": "AGENT", "query": 42}, "query"),
        ({"agent_id": "../me", "query": "Hi"}, "agent_id"),
        ({"agent_id": "AGENT", "query": "Hi", "temperature": "warm"}, "temperature"),
        ({"agent_id": "AGENT", "query": "Hi", "temperature": 3}, "temperature"),
        ({"agent_id": "AGENT", "query": "Hi", "model_name": "gpt_99"}, "model_name"),
        ({"agent_id": "AGENT", "query": "Hi", "contact": {"email": "nope"}}, "contact.email"),
        ({"agent_id": "AGENT", "query": "Hi", "callback_url": "ftp://x.example"}, "callback_url"),
        ({"agent_id": "AGENT", "query": "Hi", "querry": "typo"}, "querry"),
    ],
)
def test_bad_input_gets_422_naming_the_field(client, connection, agent, sim_admin, payload, field):
    """Wrong type, missing or unknown field: 422 naming it, < 250 chars, nothing sent upstream."""
    body = {k: (agent if v == "AGENT" else v) for k, v in payload.items()}
    response = act(client, connection["token"], ACTION, body)
    error = response.get_json()["error"]
    assert response.status_code == 422
    assert error["code"] == "invalid_input"
    assert field in error["message"]
    assert field in error["fields"]
    assert len(error["message"]) < 250
    assert query_calls(sim_admin) == []


def test_body_that_is_not_an_object_is_400(client, connection):
    """A JSON array instead of an object is malformed input (400), not a crash."""
    response = client.post(
        f"/v1/actions/{ACTION}", json=["Hi"], headers=bearer(connection["token"])
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "malformed_json"


# --- upstream refusals --------------------------------------------------------------------------


def test_unknown_agent_is_404(bridge):
    """An agent id ZappWay does not know gives 404 in both profiles."""
    response = ask(bridge, "cnotanagent00000000000000")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "upstream_not_found"


@pytest.mark.parametrize("profile", PROFILES)
def test_revoked_key_is_401_saying_rotate_it(make_app, sim_admin, seeded, agent, profile):
    """A key revoked at ZappWay gives 401 telling the user to rotate it (legacy: after a /me check).

    The legacy upstream answers a revoked key on the query route with an ambiguous 403; the bridge
    settles it with GET /me, also right after the key was verified (revocations are immediate).
    """
    sim_admin.set_profile(profile)
    bridge = build(make_app, seeded["key"], profile)
    assert ask(bridge, agent).status_code == 200  # the key is known good just before
    sim_admin.revoke_key(seeded["key"])
    response = ask(bridge, agent)
    error = response.get_json()["error"]
    assert response.status_code == 401
    assert error["code"] == "upstream_key_rejected"
    assert "rotate it" in error["message"]


def test_quota_exhausted_is_402(bridge, agent, sim_admin):
    """ZappWay's monthly quota (USAGE_LIMIT) gives 402 with a message about the plan."""
    sim_admin.settings(quota_enabled=True, quota_per_month=0)
    response = ask(bridge, agent)
    error = response.get_json()["error"]
    assert response.status_code == 402
    assert error["code"] == "upstream_quota_exceeded"
    assert "quota" in error["message"]


def test_upstream_429_is_429_with_its_retry_after(client, connection, agent, sim_admin):
    """A 429 whose Retry-After exceeds the wait budget is passed on with that Retry-After."""
    sim_admin.add_fault("rate_limit", path="/query$", retry_after=30)
    response = act(client, connection["token"], ACTION, {"agent_id": agent, "query": "Hi"})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    assert response.get_json()["error"]["code"] == "rate_limited"
    assert len(query_calls(sim_admin)) == 1


def test_legacy_429_without_retry_after_still_sends_retry_after(make_app, sim_admin, seeded, agent):
    """The legacy 429 carries no Retry-After; the bridge's 429 always does (at least 1 s)."""
    sim_admin.set_profile("legacy")
    bridge = build(make_app, seeded["key"], "legacy", upstream_rate_wait_s=0.5)
    sim_admin.add_fault("rate_limit", path="/query$", retry_after=None)
    response = ask(bridge, agent)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1


def test_upstream_500_is_502_and_the_query_is_not_resent(bridge, agent, sim_admin):
    """A 500 on a query gives 502; the query may have run (and been billed), so no retry."""
    sim_admin.add_fault("status", status=500, path="/query$")
    response = ask(bridge, agent)
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "upstream_server_error"
    assert len(query_calls(sim_admin)) == 1


def test_upstream_timeout_is_504(make_app, sim_admin, sim_server, seeded, agent):
    """Over real sockets, a query ZappWay never answers is cut at the read timeout: 504."""
    app = make_app(
        transport=None, upstream_base_url=sim_server + "/api/v1", upstream_read_timeout_s=0.3
    )
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    sim_admin.add_fault("stall", path="/query$")
    response = act(client, token, ACTION, {"agent_id": agent, "query": "Hi"})
    assert response.status_code == 504
    assert response.get_json()["error"]["code"] == "upstream_timeout"
    assert "job_id" not in response.get_json()["error"]


TRANSIENT_FAULTS = [
    pytest.param("status", {"status": 500}, 502, id="500-json"),
    pytest.param("status", {"status": 503}, 502, id="503-html"),
    pytest.param("html_5xx", {"status": 502}, 502, id="502-html"),
    pytest.param("edge_timeout", {"seconds": 0}, 502, id="524-edge"),
    pytest.param("bad_json", {}, 502, id="truncated-json"),
    pytest.param("reset", {}, 502, id="reset"),
    pytest.param("rate_limit", {"retry_after": 30}, 429, id="429"),
]


@pytest.mark.parametrize(("kind", "rule", "expected"), TRANSIENT_FAULTS)
def test_transient_faults_are_never_401(bridge, agent, sim_admin, kind, rule, expected):
    """Make deactivates a scenario on 401, so upstream hiccups map to 429/5xx, never 401."""
    sim_admin.add_fault(kind, path="/query$", **rule)
    response = ask(bridge, agent)
    assert response.status_code == expected, response.get_json()
    assert response.get_json()["error"]["code"] != "upstream_key_rejected"
