"""The connection's record of its ZappWay key follows what ZappWay last said: a 401 from any call
marks it rejected, a later success marks it valid again, and the worker's polls do not keep
knocking with a key rejected minutes ago (one probe per `RECHECK_AFTER_S`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select, update

from bridge.connections import key_health
from bridge.hooks.tasks import HookTasks
from bridge.infra.models import Connection, Watch
from bridge.web.context import service_of
from tests.actions_helpers import act
from tests.conftest import bearer, runtime_of

POLLS = {"allow_private_targets": True, "poll_interval_s": 0.05, "upstream_max_retries": 0}
TARGET = "http://127.0.0.1:9/catch"  # never reached: no conversation is delivered here


def me(client: Any, token: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/v1/me", headers=bearer(token)).get_json()
    return body


def checked_at(app: Flask, connection_id: str) -> datetime | None:
    with runtime_of(app).sessions() as session:
        return session.scalar(
            select(Connection.key_checked_at).where(Connection.id == connection_id)
        )


def test_a_401_to_an_action_marks_the_key_rejected_and_a_later_success_valid(
    client, connection, seeded, sim_admin
):
    """ZappWay refuses the key once (a 401 it takes back): `/v1/me` says rejected after the
    refused action, and valid again after the next answered one, with no rotation between."""
    token, agent = connection["token"], seeded["agents"][0]["id"]
    sim_admin.add_fault("status", status=401, path="/query", times=1)
    refused = act(client, token, "query_agent", {"agent_id": agent, "query": "one"})
    assert refused.status_code == 401, refused.get_json()
    assert me(client, token)["key_status"] == "rejected"
    answered = act(client, token, "query_agent", {"agent_id": agent, "query": "two"})
    assert answered.status_code == 200, answered.get_json()
    assert me(client, token)["key_status"] == "valid"


def test_answered_calls_with_a_valid_key_write_nothing(app, client, connection, seeded):
    """The record is written only when ZappWay's verdict changes it: answered calls with a key
    the row calls valid send no UPDATE to the connection, and its check time stays."""
    before = checked_at(app, connection["id"])
    updates: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE CONNECTIONS"):
            updates.append(statement)

    engine = runtime_of(app).engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for n in range(3):
            answer = act(client, connection["token"], "query_agent",
                         {"agent_id": seeded["agents"][0]["id"], "query": f"q{n}"})  # fmt: skip
            assert answer.status_code == 200, answer.get_json()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert updates == []
    assert checked_at(app, connection["id"]) == before


def test_verify_marks_a_key_that_works_again_valid(client, connection, sim_admin):
    """`/v1/me?verify=1` records both answers: refused (401, rejected), then accepted (200,
    valid) once ZappWay takes the key again."""
    token = connection["token"]
    sim_admin.add_fault("status", status=401, path="/me", times=1)
    refused = client.get("/v1/me?verify=1", headers=bearer(token))
    assert refused.status_code == 401
    assert me(client, token)["key_status"] == "rejected"
    verified = client.get("/v1/me?verify=1", headers=bearer(token))
    assert verified.status_code == 200, verified.get_json()
    assert verified.get_json()["key_status"] == "valid"


def conversation_reads(sim_admin: Any) -> int:
    """How often an agent's conversation list was read (each read is one poll)."""
    return sum(1 for r in sim_admin.requests() if r["path"].endswith("/conversations"))


def poll_all(app: Flask) -> None:
    """What the worker runs each interval: one `poll_watch` per watch it knows of."""
    time.sleep(POLLS["poll_interval_s"] + 0.01)  # past the poll interval: each watch is due
    with runtime_of(app).sessions() as session:
        ids = list(session.scalars(select(Watch.id)))
    for watch_id in ids:
        service_of(app, HookTasks).poll_watch(watch_id)


@pytest.fixture
def hooked(make_app, seeded) -> dict[str, Any]:
    """A bridge that polls every 50 ms, a connection on the seeded key and one hook on its
    first agent (whose watch the worker polls)."""
    app = make_app(**POLLS)
    client = app.test_client()
    created = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()
    token, agent = created["token"], seeded["agents"][0]["id"]
    hook = client.post(
        "/v1/hooks", json={"target_url": TARGET, "agent_id": agent}, headers=bearer(token)
    )
    assert hook.status_code == 201, hook.get_json()
    return {"app": app, "client": client, "token": token, "agent": agent,
            "connection_id": created["id"]}  # fmt: skip


def test_polls_hold_a_rejected_key_then_probe_it(hooked, sim_admin, seeded):
    """The key is revoked at ZappWay: the first poll is refused and marks it; the polls after
    it send nothing; once `RECHECK_AFTER_S` has passed one poll asks again. A person's own
    poll of the trigger is not held."""
    app, client, token, agent = hooked["app"], hooked["client"], hooked["token"], hooked["agent"]
    sim_admin.revoke_key(seeded["key"])
    before = conversation_reads(sim_admin)
    poll_all(app)
    assert conversation_reads(sim_admin) == before + 1
    assert me(client, token)["key_status"] == "rejected"
    poll_all(app)
    poll_all(app)
    assert conversation_reads(sim_admin) == before + 1  # held: nothing sent with the key

    time.sleep(POLLS["poll_interval_s"] + 0.01)  # the watch's last read is past the interval
    polled = client.get(f"/v1/triggers/new_conversation?agent_id={agent}", headers=bearer(token))
    assert polled.status_code == 401, polled.get_json()
    assert conversation_reads(sim_admin) == before + 2  # someone asked: ZappWay is asked

    long_ago = datetime.now(UTC) - timedelta(seconds=key_health.RECHECK_AFTER_S + 1)
    with runtime_of(app).sessions() as session:
        session.execute(
            update(Connection).where(Connection.id == hooked["connection_id"])
            .values(key_checked_at=long_ago)
        )  # fmt: skip
        session.commit()
    poll_all(app)
    assert conversation_reads(sim_admin) == before + 3  # the probe
    poll_all(app)
    assert conversation_reads(sim_admin) == before + 3  # refused again: held again


def test_the_hold_ends_when_a_call_is_answered(hooked, sim_admin):
    """A poll refused by a 401 that ZappWay takes back: an answered action lifts the hold at
    once, and the next poll reads again."""
    app, client, token, agent = hooked["app"], hooked["client"], hooked["token"], hooked["agent"]
    sim_admin.add_fault("status", status=401, path="/conversations", times=1)
    before = conversation_reads(sim_admin)
    poll_all(app)
    assert me(client, token)["key_status"] == "rejected"
    answered = act(client, token, "query_agent", {"agent_id": agent, "query": "hello"})
    assert answered.status_code == 200, answered.get_json()
    poll_all(app)
    assert conversation_reads(sim_admin) == before + 2
    assert me(client, token)["key_status"] == "valid"
