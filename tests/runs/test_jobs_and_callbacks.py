"""Long actions: the deadline path (504 + job id, then `GET /v1/jobs/<id>`) and signed callbacks.

Callbacks run for real: the app's SQLite Huey queue, a Huey consumer in threads, and a receiver
on 127.0.0.1 (`tests/receivers.py`) that records each POST; every delivery is checked with the
`standardwebhooks` library and the connection's signing secret.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from huey import Huey
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bridge.infra.models import Job
from bridge.web.context import service_of
from tests.actions_helpers import act, calls, connect, job_row, wait_for_job, wait_until
from tests.conftest import bearer, runtime_of
from tests.receivers import Received, receiver

ACTION = "query_agent"


@pytest.fixture
def agent(seeded) -> str:
    agent_id: str = seeded["agents"][0]["id"]
    return agent_id


def query_calls(sim_admin) -> list[dict[str, Any]]:
    return calls(sim_admin, "/query", "POST")


def job(client, token: str, job_id: str):
    return client.get(f"/v1/jobs/{job_id}", headers=bearer(token))


def count_jobs(app: Flask) -> int:
    with runtime_of(app).sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def verify(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


# --- the deadline path --------------------------------------------------------------------------


@pytest.fixture
def slow(make_app, seeded, sim_admin) -> dict[str, Any]:
    """A bridge with a 0.5 s action deadline and a ZappWay that takes 1.5 s per query."""
    app = make_app(action_deadline_s=0.5)
    client = app.test_client()
    created = connect(client, seeded["key"])
    sim_admin.add_fault("latency", path="/query$", seconds=1.5)
    return {"app": app, "client": client, "token": created["token"]}


def test_past_the_deadline_answers_504_with_a_job_id(slow, agent):
    """The platform hears back at the deadline: 504 whose error names the job to poll."""
    started = time.monotonic()
    response = act(slow["client"], slow["token"], ACTION, {"agent_id": agent, "query": "Hi"})
    elapsed = time.monotonic() - started
    error = response.get_json()["error"]
    assert response.status_code == 504
    assert error["code"] == "action_timeout"
    assert error["job_id"].startswith("job_")
    assert error["status_url"] == f"http://localhost/v1/jobs/{error['job_id']}"
    assert error["job_id"] in error["message"]
    assert 0.5 <= elapsed < 1.5  # at the deadline, before ZappWay's 1.5 s answer


def test_the_run_finishes_anyway_and_the_job_holds_its_result(slow, agent, sim_admin):
    """After the 504 the run carries on: the job goes from running to succeeded with the answer."""
    response = act(slow["client"], slow["token"], ACTION, {"agent_id": agent, "query": "Hi"})
    job_id = response.get_json()["error"]["job_id"]
    early = job(slow["client"], slow["token"], job_id).get_json()
    assert early == {"job_id": job_id, "action": ACTION, "status": "running"}
    done = wait_for_job(slow["client"], slow["token"], job_id, "succeeded")
    result = done["result"]
    assert result["status"] == "answered"
    assert result["answer"] == f"turn 1 of conversation {result['conversation_id']}: Hi"
    assert "callback" not in done
    assert len(query_calls(sim_admin)) == 1


def test_a_run_that_fails_after_the_deadline_is_a_failed_job(slow, agent, sim_admin):
    """An upstream 500 arriving after the deadline is kept on the job as the error clients see."""
    sim_admin.add_fault("status", status=500, path="/query$")
    response = act(slow["client"], slow["token"], ACTION, {"agent_id": agent, "query": "Hi"})
    job_id = response.get_json()["error"]["job_id"]
    failed = wait_for_job(slow["client"], slow["token"], job_id, "failed")
    assert failed["error"]["status"] == 502
    assert failed["error"]["code"] == "upstream_server_error"
    assert "result" not in failed


def test_another_connection_cannot_read_the_job(slow, agent, sim_admin):
    """A job id is not a bearer secret: another connection gets 404, as for an unknown id."""
    other_org = sim_admin.create_org("Other Org")
    other = connect(slow["client"], sim_admin.create_key(other_org["id"]))
    response = act(slow["client"], slow["token"], ACTION, {"agent_id": agent, "query": "Hi"})
    job_id = response.get_json()["error"]["job_id"]
    stranger = job(slow["client"], other["token"], job_id)
    assert stranger.status_code == 404
    assert stranger.get_json()["error"]["code"] == "not_found"
    assert job(slow["client"], slow["token"], job_id).status_code == 200
    wait_for_job(slow["client"], slow["token"], job_id, "succeeded")


def test_unknown_job_is_404(client, connection):
    """An id that was never issued is a 404."""
    response = job(client, connection["token"], "job_000000000000000000000000")
    assert response.status_code == 404


def test_answers_within_the_deadline_write_no_job(client, app, connection, agent):
    """The fast path answers 200 and costs no job row."""
    response = act(client, connection["token"], ACTION, {"agent_id": agent, "query": "Hi"})
    assert response.status_code == 200
    assert count_jobs(app) == 0


# --- callbacks ----------------------------------------------------------------------------------


@pytest.fixture
def worker(make_app, seeded) -> Iterator[dict[str, Any]]:
    """A bridge on its SQLite queue with a running Huey consumer, allowed to call 127.0.0.1."""
    app = make_app(
        allow_private_targets=True, huey_immediate=False, callback_retry_delays=(0.2, 0.2, 0.2)
    )
    client = app.test_client()
    created = connect(client, seeded["key"])
    consumer = service_of(app, Huey).create_consumer(
        workers=2, worker_type="thread", periodic=False, max_delay=0.1, check_worker_health=False
    )
    consumer.start()
    try:
        yield {
            "app": app,
            "client": client,
            "token": created["token"],
            "secret": created["signing_secret"],
        }
    finally:
        consumer.stop(graceful=True)


def ask_later(worker: dict[str, Any], agent: str, url: str, **headers: str):
    body = {"agent_id": agent, "query": "Hi", "callback_url": url}
    return act(worker["client"], worker["token"], ACTION, body, **headers)


def settled(worker: dict[str, Any], job_id: str, state: str) -> dict[str, Any]:
    """Wait until the job's callback reaches `state`; return the job as the API shows it."""

    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = job(worker["client"], worker["token"], job_id).get_json()
        return body if body.get("callback", {}).get("state") == state else None

    found: dict[str, Any] = wait_until(check)
    return found


def test_status_url_is_absolute_on_the_host_called(slow, agent):
    """The 504's status_url is a full URL on the host the caller reached, and it answers."""
    client = slow["client"]
    response = client.post(
        f"/v1/actions/{ACTION}", json={"agent_id": agent, "query": "Hi"},
        headers=bearer(slow["token"]), base_url="https://bridge.example.com",
    )  # fmt: skip
    error = response.get_json()["error"]
    assert error["status_url"] == f"https://bridge.example.com/v1/jobs/{error['job_id']}"
    polled = client.get(error["status_url"], headers=bearer(slow["token"]))
    assert polled.status_code == 200
    assert polled.get_json()["job_id"] == error["job_id"]


def test_status_url_keeps_the_scheme_the_proxy_saw(make_app, seeded, sim_admin, agent):
    """Behind BRIDGE_PROXY_HOPS trusted proxies (Heroku's router ends TLS and forwards plain
    HTTP), status_url is https as the caller used it, so a platform polling it never sends its
    token in clear text."""
    app = make_app(action_deadline_s=0.5, proxy_hops=1)
    client = app.test_client()
    token = connect(client, seeded["key"])["token"]
    sim_admin.add_fault("latency", path="/query$", seconds=1.5)
    response = client.post(
        f"/v1/actions/{ACTION}", json={"agent_id": agent, "query": "Hi"},
        headers={**bearer(token), "X-Forwarded-Proto": "https"},
        base_url="http://bridge.example.com",
    )  # fmt: skip
    error = response.get_json()["error"]
    assert error["status_url"] == f"https://bridge.example.com/v1/jobs/{error['job_id']}"


def test_callback_url_answers_202_at_once(worker, agent, sim_admin):
    """With callback_url the answer is 202 {job_id, status pending} before ZappWay has answered."""
    sim_admin.add_fault("latency", path="/query$", seconds=2.0)
    with receiver() as rec:
        started = time.monotonic()
        response = ask_later(worker, agent, rec.url)
        elapsed = time.monotonic() - started
        body = response.get_json()
        assert response.status_code == 202
        assert body == {
            "job_id": body["job_id"],
            "status": "pending",
            "status_url": f"http://localhost/v1/jobs/{body['job_id']}",
        }
        assert elapsed < 2.0  # before ZappWay answered
        rec.wait_for(1)


def test_callback_delivers_the_signed_result(worker, agent, sim_admin):
    """The worker runs the query and POSTs the result, signed per Standard Webhooks."""
    with receiver() as rec:
        job_id = ask_later(worker, agent, rec.url).get_json()["job_id"]
        (delivery,) = rec.wait_for(1)
    payload = verify(worker["secret"], delivery)
    assert delivery.headers["webhook-id"] == job_id
    assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 30
    assert payload["job_id"] == job_id
    assert payload["status"] == "succeeded"
    assert payload["result"]["status"] == "answered"
    assert payload["result"]["answer"].startswith("turn 1 of conversation")
    assert "callback" not in payload
    shown = settled(worker, job_id, "delivered")
    assert shown["callback"] == {"state": "delivered", "attempts": 1}
    assert shown["result"] == payload["result"]
    assert len(query_calls(sim_admin)) == 1


def test_signature_does_not_verify_with_another_secret(worker, agent):
    """The signature is bound to this connection's secret: another secret fails verification."""
    with receiver() as rec:
        ask_later(worker, agent, rec.url)
        (delivery,) = rec.wait_for(1)
    stranger = Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=")
    with pytest.raises(WebhookVerificationError):
        stranger.verify(delivery.body, delivery.headers)


def test_failing_receiver_is_retried_with_the_same_webhook_id(worker, agent):
    """A receiver failing twice then answering 200 gets 3 signed attempts with one webhook-id."""
    with receiver([500, 500]) as rec:
        job_id = ask_later(worker, agent, rec.url).get_json()["job_id"]
        received = rec.wait_for(3)
        shown = settled(worker, job_id, "delivered")
        time.sleep(0.3)
    assert len(rec.received) == 3
    assert {r.headers["webhook-id"] for r in received} == {job_id}
    payloads = [verify(worker["secret"], r) for r in received]
    assert payloads[0]["result"]["status"] == "answered"
    assert all(p == payloads[0] for p in payloads)
    gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
    assert all(gap >= 0.15 for gap in gaps)
    assert shown["callback"] == {"state": "delivered", "attempts": 3}


def test_receiver_answering_410_stops_at_once(worker, agent):
    """410 Gone means the waiting run is gone: one attempt, no retries, callback state gone."""
    with receiver([410]) as rec:
        job_id = ask_later(worker, agent, rec.url).get_json()["job_id"]
        shown = settled(worker, job_id, "gone")
        time.sleep(0.5)
    assert len(rec.received) == 1
    assert shown["callback"] == {"state": "gone", "attempts": 1}
    assert shown["status"] == "succeeded"


def test_receiver_that_keeps_failing_is_given_up_after_the_schedule(worker, agent):
    """Past the retry schedule (3 retries here) the callback is marked failed; the result stays."""
    with receiver(then=503) as rec:
        job_id = ask_later(worker, agent, rec.url).get_json()["job_id"]
        shown = settled(worker, job_id, "failed")
        time.sleep(0.3)
    assert len(rec.received) == 4
    assert shown["callback"] == {"state": "failed", "attempts": 4}
    assert shown["result"]["status"] == "answered"


def test_a_failed_run_is_called_back_as_failed(worker):
    """An action that fails in the worker is still reported to the callback, with its error."""
    with receiver() as rec:
        unknown = "cnotanagent00000000000000"
        job_id = ask_later(worker, unknown, rec.url).get_json()["job_id"]
        (delivery,) = rec.wait_for(1)
    payload = verify(worker["secret"], delivery)
    assert payload["job_id"] == job_id
    assert payload["status"] == "failed"
    assert payload["error"]["code"] == "upstream_not_found"
    assert payload["error"]["status"] == 404
    assert "result" not in payload


def test_idempotent_callback_request_starts_one_job(worker, agent, sim_admin):
    """A retried callback request with the same Idempotency-Key gets the same job, one query."""
    with receiver() as rec:
        first = ask_later(worker, agent, rec.url, **{"Idempotency-Key": "cb-1"})
        again = ask_later(worker, agent, rec.url, **{"Idempotency-Key": "cb-1"})
        rec.wait_for(1)
        settled(worker, first.get_json()["job_id"], "delivered")
        time.sleep(0.2)
    assert first.status_code == again.status_code == 202
    assert again.get_json()["job_id"] == first.get_json()["job_id"]
    assert len(rec.received) == 1
    assert len(query_calls(sim_admin)) == 1


def test_revoked_connection_gets_no_callback(worker, agent, sim_admin):
    """A connection revoked while its job runs gets no callback: the delivery is cancelled."""
    sim_admin.add_fault("latency", path="/query$", seconds=0.5)
    with receiver() as rec:
        job_id = ask_later(worker, agent, rec.url).get_json()["job_id"]
        revoked = worker["client"].delete("/v1/me", headers=bearer(worker["token"]))
        assert revoked.status_code == 204
        wait_until(lambda: job_row(worker["app"], job_id).callback_state != "pending")
        time.sleep(0.2)
    assert job_row(worker["app"], job_id).callback_state == "cancelled"
    assert rec.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/callback",
        "http://localhost/callback",
        "http://10.0.0.7/callback",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/callback",
    ],
)
def test_private_callback_url_is_422_naming_callback_url(
    client, app, connection, agent, sim_admin, url
):
    """Without allow_private_targets a callback to a private address is refused up front."""
    body = {"agent_id": agent, "query": "Hi", "callback_url": url}
    response = act(client, connection["token"], ACTION, body)
    error = response.get_json()["error"]
    assert response.status_code == 422
    assert error["fields"] == ["callback_url"]
    assert "callback_url" in error["message"]
    assert count_jobs(app) == 0
    assert query_calls(sim_admin) == []
