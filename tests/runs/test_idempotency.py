"""Idempotency-Key: retries, even simultaneous ones, replay the stored answer; one upstream call.

The simulator's request log counts upstream calls; concurrent retries run in threads, each with
its own Flask test client, all released together.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.actions_helpers import act, at_once, calls, connect, wait_for_job

ACTION = "query_agent"


@pytest.fixture
def agent(seeded) -> str:
    agent_id: str = seeded["agents"][0]["id"]
    return agent_id


@pytest.fixture
def body(agent) -> dict[str, Any]:
    return {"agent_id": agent, "query": "Where is my parcel?"}


def query_calls(sim_admin) -> list[dict[str, Any]]:
    return calls(sim_admin, "/query", "POST")


def keyed(client, token: str, body: dict[str, Any], key: str, action: str = ACTION):
    return act(client, token, action, body, **{"Idempotency-Key": key})


def test_five_simultaneous_retries_make_one_upstream_call(app, connection, body, sim_admin):
    """Five requests with one key at once: one runs upstream, the other four replay its answer."""
    sim_admin.add_fault("latency", path="/query$", seconds=0.3)

    def send(_index: int):
        return keyed(app.test_client(), connection["token"], body, "run-42")

    responses = at_once(5, send)
    assert [r.status_code for r in responses] == [200] * 5
    answers = [r.get_json() for r in responses]
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["answer"].startswith("turn 1 of conversation")
    assert len(query_calls(sim_admin)) == 1
    replayed = sorted(r.headers.get("Idempotent-Replayed", "no") for r in responses)
    assert replayed == ["no", "true", "true", "true", "true"]


def test_five_simultaneous_retries_on_postgres(make_app, seeded, body, sim_admin, pg_url):
    """The unique claim works the same on PostgreSQL: five at once, one upstream call."""
    app = make_app(database_url=pg_url)
    token = connect(app.test_client(), seeded["key"])["token"]
    sim_admin.add_fault("latency", path="/query$", seconds=0.3)
    responses = at_once(5, lambda _i: keyed(app.test_client(), token, body, "pg-42"))
    assert [r.status_code for r in responses] == [200] * 5
    assert len({r.get_data() for r in responses}) == 1
    assert len(query_calls(sim_admin)) == 1


def test_replay_after_completion_is_marked_and_makes_no_call(client, connection, body, sim_admin):
    """A retry after the first run finished gets the same body with Idempotent-Replayed: true."""
    first = keyed(client, connection["token"], body, "run-1")
    again = keyed(client, connection["token"], body, "run-1")
    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert len(query_calls(sim_admin)) == 1


def test_same_key_with_another_body_is_422(client, connection, body, sim_admin):
    """Reusing a key for a different request is refused (422) and does not run it."""
    keyed(client, connection["token"], body, "run-1")
    other = keyed(client, connection["token"], {**body, "query": "Something else"}, "run-1")
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert len(query_calls(sim_admin)) == 1


def test_same_key_on_another_action_is_422(client, connection, body, seeded):
    """The action is part of what a key stands for: the same key on another action is a 422."""
    keyed(client, connection["token"], body, "run-1")
    search = {"datastore_id": seeded["datastores"][0]["id"], "query": "Where is my parcel?"}
    other = keyed(client, connection["token"], search, "run-1", action="query_datastore")
    assert other.status_code == 422


def test_transient_failure_releases_the_key(client, connection, body, sim_admin):
    """A 5xx is not stored: the platform's retry with the same key runs the action again."""
    sim_admin.add_fault("status", status=500, path="/query$", times=1)
    failed = keyed(client, connection["token"], body, "run-1")
    retried = keyed(client, connection["token"], body, "run-1")
    assert failed.status_code == 502
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried.headers
    assert len(query_calls(sim_admin)) == 2
    replay = keyed(client, connection["token"], body, "run-1")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == retried.get_json()


def test_rate_limited_answer_releases_the_key(client, connection, body, sim_admin):
    """A 429 is transient too: the retry after Retry-After runs the action."""
    sim_admin.add_fault("rate_limit", path="/query$", retry_after=30, times=1)
    assert keyed(client, connection["token"], body, "run-1").status_code == 429
    assert keyed(client, connection["token"], body, "run-1").status_code == 200
    assert len(query_calls(sim_admin)) == 2


def test_final_error_is_stored_and_replayed(client, connection, sim_admin):
    """A definitive answer such as 404 (unknown agent) is replayed, not asked again."""
    body = {"agent_id": "cnotanagent00000000000000", "query": "Hi"}
    first = keyed(client, connection["token"], body, "run-1")
    again = keyed(client, connection["token"], body, "run-1")
    assert first.status_code == again.status_code == 404
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert len(query_calls(sim_admin)) == 1


def test_keys_belong_to_one_connection(client, connection, body, seeded, sim_admin):
    """Another connection using the same key string gets its own run, not this one's answer."""
    other = connect(client, seeded["key"])
    first = keyed(client, connection["token"], body, "shared-key")
    second = keyed(client, other["token"], body, "shared-key")
    assert second.status_code == 200
    assert "Idempotent-Replayed" not in second.headers
    assert second.get_json()["conversation_id"] != first.get_json()["conversation_id"]
    assert len(query_calls(sim_admin)) == 2


def test_overlong_key_is_422(client, connection, body, sim_admin):
    """A key longer than 255 characters is refused before anything runs."""
    response = keyed(client, connection["token"], body, "k" * 256)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_idempotency_key"
    assert query_calls(sim_admin) == []


def test_search_replays_too(client, connection, seeded, sim_admin):
    """Searches honour the key as well: one upstream query for two identical requests."""
    search = {"datastore_id": seeded["datastores"][0]["id"], "query": "return window"}
    first = keyed(client, connection["token"], search, "s-1", action="query_datastore")
    again = keyed(client, connection["token"], search, "s-1", action="query_datastore")
    assert again.get_json() == first.get_json() != []
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(query_calls(sim_admin)) == 1


def test_retry_after_a_deadline_504_does_not_query_again(make_app, seeded, body, sim_admin):
    """A retry of a run that passed the deadline follows its job instead of asking ZappWay again."""
    app = make_app(action_deadline_s=0.5)
    client = app.test_client()
    token = connect(client, seeded["key"])["token"]
    sim_admin.add_fault("latency", path="/query$", seconds=1.5, times=1)
    first = keyed(client, token, body, "slow-1")
    job_id = first.get_json()["error"]["job_id"]
    assert first.status_code == 504
    while_running = keyed(client, token, body, "slow-1")
    assert while_running.status_code == 504
    assert while_running.get_json()["error"]["job_id"] == job_id
    assert while_running.headers["Idempotent-Replayed"] == "true"
    wait_for_job(client, token, job_id, "succeeded")
    finished = keyed(client, token, body, "slow-1")
    assert finished.status_code == 200
    assert finished.get_json()["answer"].startswith("turn 1 of conversation")
    assert finished.headers["Idempotent-Replayed"] == "true"
    assert len(query_calls(sim_admin)) == 1


def test_retry_after_a_deadline_504_replays_the_jobs_failure(make_app, seeded, body, sim_admin):
    """When the run behind a deadline 504 failed, the retry gets that failure, not a new query."""
    app = make_app(action_deadline_s=0.5)
    client = app.test_client()
    token = connect(client, seeded["key"])["token"]
    sim_admin.add_fault("latency", path="/query$", seconds=1.0, times=1)
    sim_admin.add_fault("status", status=500, path="/query$", times=1)
    job_id = keyed(client, token, body, "slow-1").get_json()["error"]["job_id"]
    wait_for_job(client, token, job_id, "failed")
    retried = keyed(client, token, body, "slow-1")
    assert retried.status_code == 502
    assert retried.get_json()["error"]["code"] == "upstream_server_error"
    assert "status" not in retried.get_json()["error"]
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert len(query_calls(sim_admin)) == 1
