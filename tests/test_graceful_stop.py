"""SIGTERM (what Heroku sends before a restart) loses and delays nothing (issue 16, item 3).

Real processes: a worker (`python -m bridge.worker`) stopped while a sync upsert is in flight
(simulator latency) finishes that batch, hands the rest back at once and leaves no lease or
marker to expire, so a restarted worker goes on straight away; a gunicorn web process stopped
mid-request still answers that request; a queued job cut by the stop timeout runs again and
shows it (`runs`).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bridge.infra.models import DocumentMapping, Job
from tests.conftest import runtime_of
from tests.processes import (
    GUNICORN,
    gunicorn,
    running_worker,
    stop_cleanly,
    wait_until,
    worker_env,
)
from tests.receivers import receiver
from tests.sync_helpers import FAST, Bridge, upsert_calls

UPSERT = "/upsert$"
pytestmark = pytest.mark.slow


def leases_held(bridge: Bridge) -> list[str]:
    now = datetime.now(UTC)
    with bridge.runtime.sessions() as session:
        return list(
            session.scalars(
                select(DocumentMapping.external_id).where(DocumentMapping.lease_until > now)
            )
        )


@pytest.fixture
def sync_bridge(make_app, seeded, sim_admin, sim_server):
    sim_admin.settings(rate_limit_enabled=False)
    app = make_app(
        transport=None,
        upstream_base_url=f"{sim_server}/api/v1",
        huey_immediate=False,
        sync_batch_size=10,
        **FAST,
    )
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"d{n} v1") for n in range(30)))
    return bridge


def stop_and_restart(bridge: Bridge, sim_admin, sim_server: str, tmp_path: Path,
                     stop_timeout: float) -> tuple[float, str]:  # fmt: skip
    """SIGTERM the worker while an upsert is in flight; return how long it took to exit and its
    log, after checking that nothing is left to expire and that a fresh worker then delivers
    everything."""
    sim_admin.clear_requests()
    env = worker_env(tmp_path, sim_server, BRIDGE_SYNC_BATCH_SIZE="10",
                     BRIDGE_WORKER_STOP_TIMEOUT=str(stop_timeout))  # fmt: skip
    log = tmp_path / "worker.log"
    with running_worker(env, log) as worker:
        bridge.kick()
        wait_until(lambda: bool(leases_held(bridge)), 30, "a batch's leases")
        time.sleep(0.5)  # its upsert is in flight now
        took = stop_cleanly(worker, log, timeout=30)
    assert leases_held(bridge) == []
    marker = bridge.marker()
    assert marker is not None and marker <= datetime.now(UTC)  # handed over: due now
    sim_admin.clear_faults()
    with running_worker(env, log):
        wait_until(lambda: bridge.states() == {"delivered": 30}, 15, "every document delivered")
    return took, log.read_text()


def test_sigterm_mid_upsert_finishes_the_batch_and_hands_back_the_rest(
    sync_bridge, sim_admin, sim_server, tmp_path
):
    """A worker told to stop during a slow upsert finishes that batch (delivered, not redone),
    exits with no lease held and the sync due now; a restarted worker delivers the rest at
    once (not after BRIDGE_SYNC_STALE_AFTER)."""
    sim_admin.add_fault("latency", path=UPSERT, seconds=2)
    took, log = stop_and_restart(sync_bridge, sim_admin, sim_server, tmp_path, stop_timeout=10)
    assert 0.5 < took < 10, log[-3000:]  # waited for the in-flight batch
    calls = [c for c in upsert_calls(sim_admin) if c["status"] in (200, 201)]
    assert sum(len(c["body"]["documents"]) for c in calls) == 30  # no batch sent twice


def test_sigterm_hands_back_a_task_that_outlives_the_stop_timeout(
    sync_bridge, sim_admin, sim_server, tmp_path
):
    """An upsert stalled past BRIDGE_WORKER_STOP_TIMEOUT does not hold the worker: it exits
    after the timeout, the drain is queued again and its leases freed, and a restarted worker
    delivers everything."""
    sim_admin.add_fault("stall", path=UPSERT, seconds=60)
    took, log = stop_and_restart(sync_bridge, sim_admin, sim_server, tmp_path, stop_timeout=2)
    assert 1.5 < took < 8, log[-3000:]
    assert "worker.hand_back task=sync_connection" in log


@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed")
def test_sigterm_to_gunicorn_lets_the_in_flight_request_finish(
    seeded, sim_admin, sim_server, tmp_path
):
    """A web process told to stop mid-request (a 3 s agent answer) still sends that answer."""
    with gunicorn(tmp_path, ZAPPWAY_BASE_URL=f"{sim_server}/api/v1") as (base, log, server):
        created = httpx.post(f"{base}/v1/connections", json={"api_key": seeded["key"]})
        assert created.status_code == 201, created.text
        headers = {"Authorization": f"Bearer {created.json()['token']}"}
        sim_admin.add_fault("latency", path="/query$", seconds=3)
        answers: list[httpx.Response] = []
        body = {"agent_id": seeded["agents"][0]["id"], "query": "Hello?"}
        asking = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{base}/v1/actions/query_agent", json=body, headers=headers,
                           timeout=30)
            )
        )  # fmt: skip
        asking.start()
        time.sleep(1.0)
        server.send_signal(signal.SIGTERM)
        asking.join(30)
        server.wait(30)
    (answer,) = answers
    assert answer.status_code == 200, log.read_text()[-2000:]
    assert answer.json()["answer"]
    assert server.returncode == 0


@pytest.mark.parametrize(
    ("latency", "stop_timeout", "runs"),
    [pytest.param(8, 2, 2, id="handed-back-runs-again-and-says-so"),
     pytest.param(1.5, 10, 1, id="finished-within-the-stop-timeout")],
)  # fmt: skip
def test_sigterm_mid_job_finishes_it_or_shows_the_second_run(
    make_app, seeded, sim_admin, sim_server, tmp_path, latency, stop_timeout, runs
):
    """A queued job whose ZappWay call is in flight at SIGTERM either finishes within the stop
    timeout (one call, no `runs` shown) or is handed back and run again by the next worker,
    which may ask ZappWay twice: then its status and callback show `runs: 2`, never silently."""
    sim_admin.settings(rate_limit_enabled=False)
    app = make_app(transport=None, upstream_base_url=f"{sim_server}/api/v1",
                   huey_immediate=False, allow_private_targets=True)  # fmt: skip
    client = app.test_client()
    created = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()
    headers = {"Authorization": f"Bearer {created['token']}"}
    sim_admin.add_fault("latency", path="/query$", seconds=latency)
    sim_admin.clear_requests()
    env = worker_env(tmp_path, sim_server, BRIDGE_WORKER_STOP_TIMEOUT=str(stop_timeout),
                     BRIDGE_ALLOW_PRIVATE_TARGETS="true")  # fmt: skip
    log = tmp_path / "worker.log"

    def queries() -> int:
        return len([r for r in sim_admin.requests() if r["path"].endswith("/query")])

    with receiver() as rec:
        body = {"agent_id": seeded["agents"][0]["id"], "query": "Hi", "callback_url": rec.url}
        accepted = client.post("/v1/actions/query_agent", json=body, headers=headers)
        assert accepted.status_code == 202, accepted.get_json()
        job_id = accepted.get_json()["job_id"]
        with running_worker(env, log) as worker:
            wait_until(lambda: job_state(app, job_id) == "running", 30, "the job running")
            time.sleep(0.5)  # its query is in flight
            stop_cleanly(worker, log, timeout=30)
        sim_admin.clear_faults()
        with running_worker(env, log):
            (callback,) = rec.wait_for(1, timeout=15)
    payload = json.loads(callback.body)
    assert payload["status"] == "succeeded", payload
    shown = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
    if runs == 1:
        assert "runs" not in payload and "runs" not in shown
    else:
        assert payload["runs"] == shown["runs"] == 2
    wait_until(lambda: queries() == runs, 15, f"{runs} query calls")  # as many as it shows


def job_state(app, job_id: str) -> str | None:
    with runtime_of(app).sessions() as session:
        job = session.get(Job, job_id)
        return None if job is None else job.state
