"""The New Conversation polling trigger: shape, filters, samples, caching, both profiles, errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bridge.infra.models import Event
from tests.conftest import bearer, runtime_of

POLL = "/v1/triggers/new_conversation"
ITEM_FIELDS = {
    "id",
    "created_at",
    "agent_id",
    "channel",
    "status",
    "title",
    "first_message",
    "visitor_id",
    "contact",
}
FAST = {"poll_interval_s": 0.05, "upstream_max_retries": 0}


def poll(client, token: str, agent_id: str, path: str = POLL, **params: Any):
    return client.get(path, query_string={"agent_id": agent_id, **params}, headers=bearer(token))


def new_conversation(sim_admin, agent_id: str, text: str, **options: Any) -> dict[str, Any]:
    messages = [{"from": "human", "text": text}, {"from": "agent", "text": "Sure."}]
    return sim_admin.create_conversation(agent_id, messages=messages, **options)


def list_calls(sim_admin, suffix: str = "/conversations") -> list[dict[str, Any]]:
    return [r for r in sim_admin.requests() if r["path"].endswith(suffix)]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def logged_ids(app, agent_id: str) -> list[str]:
    with runtime_of(app).sessions() as session:
        return list(session.scalars(select(Event.object_id).where(Event.agent_id == agent_id)))


def test_poll_is_a_bare_array_newest_first_with_documented_fields(client, connection, seeded):
    """The seeding poll already holds the agent's conversations, newest first, documented fields."""
    agent = seeded["agents"][0]["id"]
    body = poll(client, connection["token"], agent).get_json()
    assert isinstance(body, list)
    expected = sorted(seeded["conversations"], key=lambda c: c["createdAt"], reverse=True)
    assert [item["id"] for item in body] == [c["id"] for c in expected]
    assert all(set(item) == ITEM_FIELDS for item in body)
    assert [item["created_at"][:19] for item in body] == [
        "2026-05-02T10:30:00",
        "2026-05-02T10:04:11",
        "2026-05-02T09:58:40",
    ]
    assert {item["agent_id"] for item in body} == {agent}
    assert body[1]["first_message"] == "What is your return policy?"
    assert body[1]["channel"] == "api"
    assert body[0]["contact"] == {"email": "ada@example.com"}


def test_item_ids_and_contents_are_stable_across_polls(make_app, seeded, sim_admin):
    """A later poll repeats earlier items byte for byte: id is the conversation id, forever."""
    client = make_app(**FAST).test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    first = poll(client, token, agent).get_json()
    fresh = new_conversation(sim_admin, agent, "Is it open on Sunday?")
    time.sleep(0.1)
    second = poll(client, token, agent).get_json()
    assert second[0]["id"] == fresh["id"]
    assert second[0]["first_message"] == "Is it open on Sunday?"
    assert second[1:] == first


def test_limit_caps_the_answer_to_the_newest(make_app, seeded, sim_admin):
    """`limit=2` returns the two newest items."""
    client = make_app(**FAST).test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    body = poll(client, token, agent, limit=2).get_json()
    assert [item["created_at"][:16] for item in body] == ["2026-05-02T10:30", "2026-05-02T10:04"]


@pytest.mark.parametrize("limit", ["101", "0", "many"])
def test_limit_out_of_range_is_422_naming_limit(client, connection, seeded, limit):
    """A limit above 100 (Zapier's flood cap), below 1 or not a number is refused naming it."""
    response = poll(client, connection["token"], seeded["agents"][0]["id"], limit=limit)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_input"
    assert error["fields"] == ["limit"]
    assert "limit" in error["message"]


def test_limit_of_100_is_accepted(client, connection, seeded):
    """100 is the largest accepted limit."""
    response = poll(client, connection["token"], seeded["agents"][0]["id"], limit=100)
    assert response.status_code == 200
    assert len(response.get_json()) == 3


def test_since_keeps_only_later_conversations(client, connection, seeded):
    """`since` (ISO 8601) keeps conversations created strictly after it."""
    agent = seeded["agents"][0]["id"]
    body = poll(client, connection["token"], agent, since="2026-05-02T10:04:11Z").get_json()
    assert [item["created_at"][:19] for item in body] == ["2026-05-02T10:30:00"]


def test_since_without_time_zone_is_422(client, connection, seeded):
    """A naive `since` is ambiguous and refused naming the field."""
    agent = seeded["agents"][0]["id"]
    response = poll(client, connection["token"], agent, since="2026-05-02T10:04:11")
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == ["since"]


def test_after_id_keeps_only_newer_conversations(client, connection, seeded):
    """`after_id` (Make's lastId) returns the items logged after that id, newest first."""
    agent = seeded["agents"][0]["id"]
    oldest = poll(client, connection["token"], agent).get_json()[-1]["id"]
    body = poll(client, connection["token"], agent, after_id=oldest).get_json()
    assert [item["created_at"][:16] for item in body] == ["2026-05-02T10:30", "2026-05-02T10:04"]


def test_sample_gives_at_most_three_real_items(make_app, seeded, sim_admin):
    """`?sample=1` answers up to 3 real, unmarked items when the agent has more."""
    client = make_app(**FAST).test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    new_conversation(sim_admin, agent, "One more")
    body = poll(client, token, agent, sample=1).get_json()
    assert len(body) == 3
    assert body[0]["first_message"] == "One more"
    assert all("is_sample" not in item for item in body)


def test_sample_for_an_agent_without_conversations_is_marked(client, connection, seeded):
    """An agent with no conversations gets the synthetic sample, marked `is_sample: true`."""
    body = poll(client, connection["token"], seeded["agents"][1]["id"], sample=1).get_json()
    assert len(body) == 1
    assert body[0]["is_sample"] is True
    assert set(body[0]) == ITEM_FIELDS | {"is_sample"}


def test_agent_without_conversations_polls_empty(client, connection, seeded):
    """Without `sample`, an agent with no conversations answers `[]`, never the sample."""
    assert poll(client, connection["token"], seeded["agents"][1]["id"]).get_json() == []


def test_hundred_polls_within_the_interval_cost_one_upstream_list(make_app, seeded, sim_admin):
    """100 polls of one agent inside the poll interval make one upstream conversations call."""
    client = make_app(poll_interval_s=60).test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    sim_admin.clear_requests()
    answers = [poll(client, token, agent) for _ in range(100)]
    assert {response.status_code for response in answers} == {200}
    assert len({response.get_data() for response in answers}) == 1
    assert len(list_calls(sim_admin)) == 1


def test_after_the_interval_the_next_poll_reads_upstream_once(make_app, seeded, sim_admin):
    """Once the interval has passed, the next poll reads upstream again (and only once)."""
    # 0.5 s, not FAST's 0.05 s: the five polls below must all fit inside one interval even on
    # a loaded machine.
    client = make_app(**{**FAST, "poll_interval_s": 0.5}).test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    poll(client, token, agent)
    time.sleep(0.6)
    sim_admin.clear_requests()
    for _ in range(5):
        poll(client, token, agent)
    assert len(list_calls(sim_admin)) == 1


def test_kebab_path_alias_answers_the_same(client, connection, seeded):
    """/v1/triggers/new-conversation is the same trigger as /v1/triggers/new_conversation."""
    agent = seeded["agents"][0]["id"]
    snake = poll(client, connection["token"], agent)
    kebab = poll(client, connection["token"], agent, path="/v1/triggers/new-conversation")
    assert kebab.status_code == 200
    assert kebab.get_json() == snake.get_json()


def test_missing_agent_id_is_422_naming_it(client, connection):
    """agent_id is required."""
    response = client.get(POLL, headers=bearer(connection["token"]))
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == ["agent_id"]


def test_unknown_agent_is_404(client, connection):
    """An agent the upstream does not know is a 404, not an empty list."""
    response = poll(client, connection["token"], "clagentdoesnotexist00000")
    assert response.status_code == 404


def test_agent_of_another_organization_is_403_not_an_empty_list(client, connection, sim_admin):
    """A ZappWay 403 for the agent is passed on: an empty list would hide the mistake forever."""
    other = sim_admin.create_org("Someone Else")
    theirs = sim_admin.create_agent(other["id"], "Their Agent")
    sim_admin.create_conversation(theirs["id"], messages=[{"from": "human", "text": "private"}])
    response = poll(client, connection["token"], theirs["id"])
    assert response.status_code == 403
    assert "private" not in response.get_data(as_text=True)


def test_upstream_429_while_polling_serves_the_log(make_app, seeded, sim_admin):
    """ZappWay throttling during a poll answers 200 with the log, like any transient fault."""
    client = make_app(**FAST).test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    before = poll(client, token, agent).get_json()
    sim_admin.add_fault("rate_limit", path="/conversations$", retry_after=30)
    time.sleep(0.1)
    response = poll(client, token, agent)
    assert response.status_code == 200
    assert response.get_json() == before


def test_revoked_connection_is_401(client, connection, seeded):
    """After the connection is revoked, polling answers 401 revoked_credentials."""
    assert client.delete("/v1/me", headers=bearer(connection["token"])).status_code == 204
    response = poll(client, connection["token"], seeded["agents"][0]["id"])
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "revoked_credentials"


def test_missing_token_is_401(client, seeded):
    """Polling without credentials is a 401."""
    response = client.get(POLL, query_string={"agent_id": seeded["agents"][0]["id"]})
    assert response.status_code == 401


def test_upstream_5xx_serves_the_log_as_it_stands(make_app, seeded, sim_admin):
    """A ZappWay 5xx during a poll answers 200 with what is already logged, never a 5xx."""
    client = make_app(**FAST).test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    before = poll(client, token, agent).get_json()
    sim_admin.add_fault("status", status=503, path="/conversations$")
    time.sleep(0.1)
    sim_admin.clear_requests()
    response = poll(client, token, agent)
    assert response.status_code == 200
    assert response.get_json() == before
    assert [r["status"] for r in list_calls(sim_admin)] == [503]


def test_upstream_5xx_on_the_first_poll_is_an_empty_200(make_app, seeded, sim_admin):
    """Even with nothing logged yet, an upstream outage is not passed on as a 5xx."""
    client = make_app(**FAST).test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    sim_admin.add_fault("html_5xx", path="/conversations$")
    response = poll(client, token, seeded["agents"][0]["id"])
    assert response.status_code == 200
    assert response.get_json() == []


def test_key_rejected_upstream_is_401(client, connection, seeded, sim_admin):
    """A ZappWay key revoked upstream makes the poll answer 401 upstream_key_rejected."""
    sim_admin.revoke_key(seeded["key"])
    response = poll(client, connection["token"], seeded["agents"][0]["id"])
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "upstream_key_rejected"


def test_new_conversation_appears_after_the_interval(make_app, seeded, sim_admin):
    """A conversation created after the seeding poll shows up first on a later poll."""
    client = make_app(**FAST).test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    poll(client, token, agent)
    fresh = new_conversation(sim_admin, agent, "Hello?", lead={"email": "bo@example.com"})
    time.sleep(0.1)
    body = poll(client, token, agent).get_json()
    assert [item["id"] for item in body][:1] == [fresh["id"]]
    assert body[0]["contact"] == {"email": "bo@example.com"}
    assert len(body) == 4


def test_documented_profile_follows_pages_beyond_100(make_app, seeded, sim_admin):
    """More than 100 new conversations in one interval are all logged (page 2 is read)."""
    app = make_app(**FAST, plan_limits={"free": 10_000, "pro": 10_000})
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    poll(client, token, agent)
    start = datetime.now(UTC) - timedelta(minutes=10)
    created = [
        sim_admin.create_conversation(agent, created_at=iso(start + timedelta(seconds=i)))["id"]
        for i in range(130)
    ]
    time.sleep(0.1)
    sim_admin.clear_requests()
    body = poll(client, token, agent, limit=100).get_json()
    assert [item["id"] for item in body] == created[::-1][:100]
    assert sorted(logged_ids(app, agent)) == sorted(
        created + [c["id"] for c in seeded["conversations"]]
    )
    assert [r["query"].get("page") for r in list_calls(sim_admin)] == ["1", "2"]


# --- legacy profile: GET /api/logs, pages of 100 by updatedAt desc with an id cursor ---------


@pytest.fixture
def legacy(make_app, seeded, sim_admin):
    """A bridge speaking the legacy profile to a legacy simulator, with a roomy rate budget."""
    sim_admin.set_profile("legacy")
    app = make_app(
        **FAST,
        upstream_profile="legacy",
        upstream_base_url="http://sim/api",
        plan_limits={"free": 10_000, "pro": 10_000},
    )
    client = app.test_client()
    response = client.post("/v1/connections", json={"api_key": seeded["key"]})
    assert response.status_code == 201, response.get_json()
    return {"app": app, "client": client, "token": response.get_json()["token"]}


def test_legacy_poll_reads_logs_and_answers_the_same_shape(legacy, seeded, sim_admin):
    """In the legacy profile the trigger reads /api/logs and answers the same items."""
    agent = seeded["agents"][0]["id"]
    sim_admin.clear_requests()
    body = poll(legacy["client"], legacy["token"], agent).get_json()
    expected = sorted(seeded["conversations"], key=lambda c: c["createdAt"], reverse=True)
    assert [item["id"] for item in body] == [c["id"] for c in expected]
    assert all(set(item) == ITEM_FIELDS for item in body)
    assert body[1]["first_message"] == "What is your return policy?"
    calls = list_calls(sim_admin, "/logs")
    assert len(calls) == 1
    assert calls[0]["query"]["agentId"] == agent


def test_legacy_pages_past_100_logs(legacy, seeded, sim_admin):
    """More than 100 new conversations are found by following the logs cursor."""
    agent = seeded["agents"][0]["id"]
    poll(legacy["client"], legacy["token"], agent)
    start = datetime.now(UTC) - timedelta(minutes=10)
    created = [
        sim_admin.create_conversation(agent, created_at=iso(start + timedelta(seconds=i)))["id"]
        for i in range(150)
    ]
    time.sleep(0.1)
    sim_admin.clear_requests()
    body = poll(legacy["client"], legacy["token"], agent, limit=100).get_json()
    assert [item["id"] for item in body] == created[::-1][:100]
    assert sorted(logged_ids(legacy["app"], agent)) == sorted(
        created + [c["id"] for c in seeded["conversations"]]
    )
    cursors = [r["query"].get("cursor") for r in list_calls(sim_admin, "/logs")]
    assert cursors[0] is None
    assert cursors[1] == created[50]


class TouchBetweenPages(httpx.BaseTransport):
    """The simulator's transport, plus one action run right after the first /logs page is read.

    That is the moment a ZappWay user's reply moves a conversation to the top of /logs.
    """

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.action: Any = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        first_page = request.url.path.endswith("/logs") and "cursor" not in request.url.params
        if first_page and self.action is not None:
            action, self.action = self.action, None
            action()
        return response


def test_legacy_conversation_touched_between_page_reads_is_neither_lost_nor_doubled(
    make_app, seeded, sim_admin, sim_transport
):
    """A conversation jumping to the top of /logs while page 2 is pending is still logged once."""
    sim_admin.set_profile("legacy")
    transport = TouchBetweenPages(sim_transport)
    app = make_app(
        transport,
        **FAST,
        upstream_profile="legacy",
        upstream_base_url="http://sim/api",
        plan_limits={"free": 10_000, "pro": 10_000},
    )
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    poll(client, token, agent)
    start = datetime.now(UTC) - timedelta(minutes=10)
    created = [
        sim_admin.create_conversation(agent, created_at=iso(start + timedelta(seconds=i)))["id"]
        for i in range(150)
    ]
    # Page 1 holds created[149..50]; created[10] sits on page 2 until this reply moves it up.
    transport.action = lambda: sim_admin.touch_conversation(created[10], text="Any news?")
    time.sleep(0.1)
    poll(client, token, agent)
    assert transport.action is None
    time.sleep(0.1)
    poll(client, token, agent)
    ids = logged_ids(app, agent)
    assert len(ids) == len(set(ids))
    assert created[10] in ids
    assert set(ids) == set(created) | {c["id"] for c in seeded["conversations"]}
