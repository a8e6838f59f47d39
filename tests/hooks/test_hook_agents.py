"""A hook's agent must exist: subscribing to an unknown one is a 422 naming `agent_id`, and a hook
whose agent disappears later is disabled with the reason shown, and is no longer polled."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from bridge.hooks import detection
from bridge.hooks.tasks import HookTasks
from bridge.infra.models import Watch
from bridge.web.context import service_of
from tests.actions_helpers import PREFIX
from tests.conftest import bearer, runtime_of

SETTINGS = {"allow_private_targets": True, "poll_interval_s": 0.05, "upstream_max_retries": 0}
TARGET = "http://127.0.0.1:9/catch"  # never reached: no conversation is delivered here
UNKNOWN = "clagent_no_such_agent_000001"


def bridge(make_app, sim_admin, key: str, profile: str) -> tuple[Flask, str]:
    sim_admin.set_profile(profile)
    app = make_app(upstream_profile=profile, upstream_base_url=PREFIX[profile], **SETTINGS)
    response = app.test_client().post("/v1/connections", json={"api_key": key})
    assert response.status_code == 201, response.get_json()
    return app, response.get_json()["token"]


def subscribe(app: Flask, token: str, agent_id: str) -> Any:
    body = {"target_url": TARGET, "agent_id": agent_id}
    return app.test_client().post("/v1/hooks", json=body, headers=bearer(token))


def hooks(app: Flask, token: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (
        app.test_client().get("/v1/hooks", headers=bearer(token)).get_json()
    )
    return listed


def poll_all(app: Flask) -> None:
    """What the worker runs each interval: one `poll_watch` per watch it knows of."""
    time.sleep(0.06)  # past the poll interval, so each watch is due
    with runtime_of(app).sessions() as session:
        ids = list(session.scalars(select(Watch.id)))
    for watch_id in ids:
        service_of(app, HookTasks).poll_watch(watch_id)


def conversation_reads(sim_admin, profile: str) -> int:
    """How often the agent's conversation list was read (each read is one poll)."""
    ending = "/conversations" if profile == "documented" else "/logs"
    return sum(1 for r in sim_admin.requests() if r["path"].endswith(ending))


@pytest.mark.parametrize("profile", ["documented", "legacy"])
def test_subscribing_an_unknown_agent_is_422_naming_agent_id(make_app, sim_admin, seeded, profile):
    """ZappWay does not know the agent (404, or legacy `null`): 422 on `agent_id`, no hook."""
    app, token = bridge(make_app, sim_admin, seeded["key"], profile)
    response = subscribe(app, token, UNKNOWN)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["fields"] == ["agent_id"]
    assert "agent_id" in error["message"]
    assert hooks(app, token) == []
    assert conversation_reads(sim_admin, profile) == 0  # nothing polled for it


def test_subscribing_another_orgs_private_agent_is_422_naming_agent_id(make_app, sim_admin, seeded):
    """An agent the key may not read is refused the same way (403 upstream), not subscribed."""
    other = sim_admin.create_org("Other")
    private = sim_admin.create_agent(other["id"], "Theirs", visibility="private")
    app, token = bridge(make_app, sim_admin, seeded["key"], "documented")
    response = subscribe(app, token, private["id"])
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["fields"] == ["agent_id"]


@pytest.mark.parametrize("profile", ["documented", "legacy"])
def test_a_hook_whose_agent_disappears_is_disabled_with_why_and_no_longer_polled(
    make_app, sim_admin, seeded, profile
):
    """The agent is deleted after subscribing: the next poll disables the hook with a reason in
    `GET /v1/hooks`, and later polls do not read ZappWay for that agent any more."""
    app, token = bridge(make_app, sim_admin, seeded["key"], profile)
    agent = seeded["agents"][0]["id"]
    created = subscribe(app, token, agent)
    assert created.status_code == 201, created.get_json()
    (hook,) = hooks(app, token)
    assert hook["state"] == "active"
    sim_admin.delete_agent(agent)
    if profile == "legacy":  # its conversation list cannot tell: the agent is asked for at most
        time.sleep(SETTINGS["poll_interval_s"] * detection.AGENT_CHECK_POLLS)  # once a slot
    poll_all(app)
    (hook,) = hooks(app, token)
    assert hook["state"] == "disabled"
    assert agent in hook["state_reason"] and "404" in hook["state_reason"]
    assert hook["disabled_at"] is not None
    assert detection.watched(runtime_of(app)) == []
    reads = len(sim_admin.requests())
    poll_all(app)
    poll_all(app)
    assert len(sim_admin.requests()) == reads  # polling stopped: ZappWay is not asked again


def test_a_hook_on_a_live_agent_stays_active_after_polls(make_app, sim_admin, seeded):
    """The agent check costs nothing to a working hook: it stays active and keeps being polled."""
    app, token = bridge(make_app, sim_admin, seeded["key"], "documented")
    agent = seeded["agents"][0]["id"]
    assert subscribe(app, token, agent).status_code == 201
    before = conversation_reads(sim_admin, "documented")
    poll_all(app)
    (hook,) = hooks(app, token)
    assert hook["state"] == "active"
    assert conversation_reads(sim_admin, "documented") == before + 1


def test_the_console_shows_the_disabled_hook_and_why(make_app, sim_admin, seeded):
    """The console's hooks page shows the hook disabled with the reason its agent is gone."""
    app, token = bridge(make_app, sim_admin, seeded["key"], "documented")
    agent = seeded["agents"][0]["id"]
    assert subscribe(app, token, agent).status_code == 201
    sim_admin.delete_agent(agent)
    poll_all(app)
    client = app.test_client()
    page = client.get("/console/sign-in").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    signed = client.post("/console/sign-in", data={"token": token, "csrf_token": csrf})
    assert signed.status_code == 302
    (hook,) = hooks(app, token)
    cid = client.get("/v1/me", headers=bearer(token)).get_json()["id"]
    listed = client.get(f"/console/connections/{cid}/hooks").get_data(as_text=True)
    assert "disabled" in listed
    assert html.escape(hook["state_reason"]) in listed
