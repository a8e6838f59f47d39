"""A call whose deadline passes while it still waits for its key's own rate budget never left the
bridge: it answers 429 with Retry-After saying so, makes no job, and ZappWay is never called."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from bridge.infra.models import Job
from tests.actions_helpers import act, calls
from tests.conftest import runtime_of

PLAN = 2  # requests per minute: the connection's `GET /me` and one query fill it


@pytest.fixture
def full_budget(make_app, seeded, sim_admin) -> dict[str, Any]:
    """A bridge whose deadline (0.5 s) is shorter than its rate wait (2 s), and a connection
    whose two-a-minute budget is already spent (its key check and one answered query)."""
    app = make_app(action_deadline_s=0.5, upstream_rate_wait_s=2.0)
    client = app.test_client()
    created = client.post(
        "/v1/connections", json={"api_key": seeded["key"], "label": "Full", "plan": str(PLAN)}
    )
    assert created.status_code == 201, created.get_json()
    token = created.get_json()["token"]
    agent = seeded["agents"][0]["id"]
    first = act(client, token, "query_agent", {"agent_id": agent, "query": "one"})
    assert first.status_code == 200, first.get_json()
    assert len(calls(sim_admin, "/query", "POST")) == 1
    return {"app": app, "client": client, "token": token, "agent": agent}


def test_a_call_waiting_for_its_budget_at_the_deadline_answers_429_never_sent(
    full_budget, sim_admin
):
    """Past the deadline with nothing sent: 429, Retry-After, a message saying the call never
    left the bridge, and no second query in the simulator's request log."""
    started = time.monotonic()
    response = act(
        full_budget["client"], full_budget["token"], "query_agent",
        {"agent_id": full_budget["agent"], "query": "two"},
    )  # fmt: skip
    elapsed = time.monotonic() - started
    error = response.get_json()["error"]
    assert response.status_code == 429, error
    assert error["code"] == "rate_budget_wait"
    assert "never left the bridge" in error["message"]
    assert "job_id" not in error
    assert int(response.headers["Retry-After"]) >= 1
    assert elapsed < 2.0  # answered at the deadline, not after the full rate wait
    time.sleep(2.0)  # past the rate wait: the called-off run must not have sent it late
    assert len(calls(sim_admin, "/query", "POST")) == 1


def test_a_call_called_off_at_the_deadline_leaves_no_job(full_budget):
    """Nothing was sent, so there is nothing to poll: no job row is made for it."""
    response = act(
        full_budget["client"], full_budget["token"], "query_agent",
        {"agent_id": full_budget["agent"], "query": "two"},
    )  # fmt: skip
    assert response.status_code == 429
    with runtime_of(full_budget["app"]).sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_call_whose_budget_store_is_unreachable_answers_503_never_sent(
    make_app, seeded, sim_admin
):
    """Redis (the shared rate budget) refusing connections: an action answers an honest 503
    saying the call never left the bridge, never a 500, and ZappWay is not called."""
    registered = (
        make_app()
        .test_client()
        .post("/v1/connections", json={"api_key": seeded["key"], "label": "No Redis"})
    )
    assert registered.status_code == 201, registered.get_json()
    cut_off = make_app(redis_url="redis://127.0.0.1:1/0")  # same database; nothing on port 1
    agent = seeded["agents"][0]["id"]
    response = act(
        cut_off.test_client(), registered.get_json()["token"], "query_agent",
        {"agent_id": agent, "query": "one"},
    )  # fmt: skip
    error = response.get_json()["error"]
    assert response.status_code == 503, error
    assert error["code"] == "upstream_unavailable"
    assert "never left the bridge" in error["message"]
    assert calls(sim_admin, "/query", "POST") == []
