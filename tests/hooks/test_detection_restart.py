"""Detection survives restarts: durable cursor, watch and delivery leases, a SIGKILLed worker.

"A restarted worker" is a fresh app object on the same SQLite files (nothing carried over in
memory); the last test runs the real `python -m bridge.worker` and kills it with SIGKILL.
"""

from __future__ import annotations

import collections
import json
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from huey import Huey
from sqlalchemy import select

from bridge.hooks import deliveries, detection
from bridge.hooks.tasks import HookTasks
from bridge.infra.models import Delivery, Watch
from bridge.registry import trigger_for
from bridge.web.context import service_of
from tests.conftest import bearer, runtime_of
from tests.processes import running_worker, wait_until, worker_env
from tests.receivers import receiver

NEW_CONVERSATION = trigger_for("new_conversation")
SETTINGS = {
    "allow_private_targets": True,
    "poll_interval_s": 0.05,
    "upstream_max_retries": 0,
    "plan_limits": {"free": 10_000, "pro": 10_000},
}


def talk(sim_admin, agent_id: str, text: str = "Hello") -> str:
    conversation = sim_admin.create_conversation(
        agent_id, messages=[{"from": "human", "text": text}]
    )
    return str(conversation["id"])


def run_worker_polls(app) -> None:
    """What a worker does each poll interval: one poll_watch per watched agent."""
    time.sleep(0.06)
    for watch_id in detection.watched(runtime_of(app)):
        service_of(app, HookTasks).poll_watch(watch_id)


def pushed_ids(rec) -> list[str]:
    return [json.loads(r.body)["id"] for r in rec.received]


def test_cursor_survives_restarts_without_loss_or_repeats(make_app, seeded, sim_admin):
    """Conversations created across three worker lifetimes each reach the hook exactly once."""
    agent = seeded["agents"][0]["id"]
    first = make_app(**SETTINGS)
    token = first.test_client().post("/v1/connections", json={"api_key": seeded["key"]})
    token = token.get_json()["token"]
    created: list[str] = []
    with receiver() as rec:
        hook = first.test_client().post(
            "/v1/hooks", json={"url": rec.url, "agent_id": agent}, headers=bearer(token)
        )
        assert hook.status_code == 201
        created.append(talk(sim_admin, agent, "during the first run"))
        run_worker_polls(first)
        created.append(talk(sim_admin, agent, "created while no worker runs"))
        second = make_app(**SETTINGS)
        created.append(talk(sim_admin, agent, "during the second run"))
        run_worker_polls(second)
        run_worker_polls(second)
        created += [talk(sim_admin, agent, "down again"), talk(sim_admin, agent, "and again")]
        third = make_app(**SETTINGS)
        run_worker_polls(third)
        run_worker_polls(third)
        rec.wait_for(len(created))
        time.sleep(0.2)
        assert sorted(pushed_ids(rec)) == sorted(created)
        assert len(set(rec.ids())) == len(rec.ids()) == len(created)


def test_cursor_is_stored_not_kept_in_memory(make_app, seeded, sim_admin):
    """After a read, the watch row holds the newest conversation time as its cursor."""
    agent = seeded["agents"][0]["id"]
    app = make_app(**SETTINGS)
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    client.get(
        "/v1/triggers/new_conversation", query_string={"agent_id": agent}, headers=bearer(token)
    )
    with runtime_of(make_app(**SETTINGS)).sessions() as session:
        watch = session.scalar(select(Watch).where(Watch.agent_id == agent))
    assert watch.cursor_created_at.isoformat().startswith("2026-05-02T10:30:00")
    assert watch.seeded_at is not None
    assert watch.lease_until is None


def test_watch_lease_lets_one_of_two_concurrent_refreshes_read_upstream(
    make_app, seeded, sim_admin
):
    """Two processes refreshing one agent at once make one upstream read; the other skips."""
    agent = seeded["agents"][0]["id"]
    apps = [make_app(**SETTINGS), make_app(**SETTINGS)]
    token = apps[0].test_client().post("/v1/connections", json={"api_key": seeded["key"]})
    connection_id = token.get_json()["id"]
    sim_admin.add_fault("latency", path="/conversations$", seconds=0.5)
    sim_admin.clear_requests()
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def refresh(index: int) -> None:
        barrier.wait()
        results[index] = detection.refresh(
            runtime_of(apps[index]), NEW_CONVERSATION, connection_id, agent, max_age_s=0
        )

    threads = [threading.Thread(target=refresh, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(r.refreshed for r in results) == [False, True]
    lists = [r for r in sim_admin.requests() if r["path"].endswith("/conversations")]
    assert len(lists) == 1


def test_a_lease_left_by_a_dead_process_expires(make_app, seeded, sim_admin, monkeypatch):
    """A watch claimed by a process that died mid-read is read again once its lease runs out."""
    monkeypatch.setattr(detection, "LEASE", timedelta(seconds=0.3))
    agent = seeded["agents"][0]["id"]
    app = make_app(**SETTINGS)
    runtime = runtime_of(app)
    connection_id = app.test_client().post("/v1/connections", json={"api_key": seeded["key"]})
    connection_id = connection_id.get_json()["id"]
    with runtime.sessions() as session:
        watch = detection.ensure_watch(session, connection_id, "new_conversation", agent)
        assert detection._claim(session, watch.id, max_age_s=0)  # the process that then died
    assert (
        detection.refresh(runtime, NEW_CONVERSATION, connection_id, agent, max_age_s=0).refreshed
        is False
    )
    time.sleep(0.35)
    assert (
        detection.refresh(runtime, NEW_CONVERSATION, connection_id, agent, max_age_s=0).refreshed
        is True
    )


def test_failed_read_releases_the_lease_and_keeps_the_cursor(make_app, seeded, sim_admin):
    """An upstream failure mid-read records the error, frees the watch and loses nothing."""
    agent = seeded["agents"][0]["id"]
    app = make_app(**SETTINGS)
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    poll = {"agent_id": agent}
    client.get("/v1/triggers/new_conversation", query_string=poll, headers=bearer(token))
    fresh = talk(sim_admin, agent)
    sim_admin.add_fault("status", status=500, path="/conversations$", times=1)
    time.sleep(0.06)
    client.get("/v1/triggers/new_conversation", query_string=poll, headers=bearer(token))
    with runtime_of(app).sessions() as session:
        watch = session.scalar(select(Watch).where(Watch.agent_id == agent))
    assert watch.lease_until is None
    assert watch.last_error
    time.sleep(0.06)
    items = client.get("/v1/triggers/new_conversation", query_string=poll, headers=bearer(token))
    assert items.get_json()[0]["id"] == fresh


def log_one_delivery(app, seeded, sim_admin, url: str) -> int:
    """Hook `url` on the first agent, talk to it and read it as a worker's poll would, without
    delivering: the one pending delivery's id (its first attempt's task left in the queue)."""
    agent = seeded["agents"][0]["id"]
    runtime = runtime_of(app)
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    client.post("/v1/hooks", json={"url": url, "agent_id": agent}, headers=bearer(token))
    talk(sim_admin, agent)
    time.sleep(0.06)
    for watch_id in detection.watched(runtime):
        detection.refresh(runtime, NEW_CONVERSATION, *_watch_key(app, watch_id), max_age_s=0)
    with runtime.sessions() as session:
        (delivery_id,) = session.scalars(select(Delivery.id))
    return int(delivery_id)


def test_delivery_orphaned_by_a_dead_worker_is_swept_and_resent(
    make_app, seeded, sim_admin, monkeypatch
):
    """A delivery whose worker died mid-attempt is re-sent by the sweep with the same id."""
    monkeypatch.setattr(deliveries, "LEASE", timedelta(seconds=0.3))
    app = make_app(**SETTINGS, huey_immediate=False)
    runtime = runtime_of(app)
    with receiver() as rec:
        delivery_id = log_one_delivery(app, seeded, sim_admin, rec.url)
        claimed = deliveries._claim(runtime, [delivery_id])  # by the worker that then died
        assert claimed.won == [delivery_id]
        huey = service_of(app, Huey)
        huey.flush()
        sweep = service_of(app, HookTasks).sweep_once
        sweep.call_local()
        assert huey.pending_count() == 0  # still leased: not swept yet
        time.sleep(0.35)
        sweep.call_local()
        assert huey.pending_count() == 1
        while huey.pending_count():
            huey.execute(huey.dequeue())
        (request,) = rec.wait_for(1)
    assert request.headers["webhook-id"] == f"msg_{_event_of(app, delivery_id)}"


def test_a_sweep_spares_a_delivery_whose_task_is_still_queued(
    make_app, seeded, sim_admin, monkeypatch
):
    """A delivery just fanned out (its task waits in the queue) is not swept, which would queue
    it twice; once it has been due for a lease with nobody holding it, its task was lost."""
    monkeypatch.setattr(deliveries, "LEASE", timedelta(seconds=0.3))
    app = make_app(**SETTINGS, huey_immediate=False)
    runtime = runtime_of(app)
    delivery_id = log_one_delivery(app, seeded, sim_admin, "http://127.0.0.1:9/")
    assert deliveries.due(runtime) == []
    time.sleep(0.35)
    assert deliveries.due(runtime) == [delivery_id]


def test_deliveries_are_swept_four_times_a_minute(make_app):
    """The minute's sweep queues three more, 15 s apart: a delivery whose task was lost waits
    for its lease and at most 15 s more, not for the next minute."""
    app = make_app(**SETTINGS, huey_immediate=False)
    huey = service_of(app, Huey)
    huey.flush()
    before = datetime.now(UTC).replace(tzinfo=None)  # huey keeps naive UTC times
    service_of(app, HookTasks).sweep_deliveries.call_local()
    sweeps = [task for task in huey.pending() if task.name == "sweep_deliveries_once"]
    offsets = sorted((task.eta - before).total_seconds() for task in sweeps)
    assert len(offsets) == 3
    assert all(at <= offset < at + 2 for at, offset in zip((15, 30, 45), offsets, strict=True))


def _watch_key(app, watch_id: int) -> tuple[str, str]:
    with runtime_of(app).sessions() as session:
        watch = session.get(Watch, watch_id)
        return watch.connection_id, watch.agent_id


def _event_of(app, delivery_id: int) -> str:
    with runtime_of(app).sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        return f"{delivery.event_id}_{delivery.subscription_id}"


# --- the real worker process, killed with SIGKILL ------------------------------------------


def hook_worker_env(tmp_path: Path, sim_server: str, **extra: str) -> dict[str, str]:
    """A worker's environment for hook tests: agents polled every second, the receiver on
    loopback allowed."""
    return worker_env(tmp_path, sim_server, BRIDGE_POLL_INTERVAL="1",
                      BRIDGE_ALLOW_PRIVATE_TARGETS="true", **extra)  # fmt: skip


def wait_until_no_poll_runs(app, timeout: float = 5.0) -> None:
    """Return as soon as no watch is leased (no poll in flight); polls last milliseconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with runtime_of(app).sessions() as session:
            if session.scalar(select(Watch.id).where(Watch.lease_until.is_not(None))) is None:
                return
        time.sleep(0.005)
    raise AssertionError("a poll was still running after 5 s")


def app_for_a_real_worker(make_app, seeded, sim_admin, sim_server) -> tuple[Any, Any, str, str]:
    """An app whose queue a `python -m bridge.worker` runs, on the simulator over its socket
    (its rate limit off: the test is about the worker, not the budget); (app, its test client,
    a connection's token, the first agent's id)."""
    sim_admin.settings(rate_limit_enabled=False)
    app = make_app(**SETTINGS, huey_immediate=False, upstream_base_url=f"{sim_server}/api/v1")
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    return app, client, token, seeded["agents"][0]["id"]


def test_sigkilled_worker_loses_no_conversation(make_app, seeded, sim_admin, sim_server, tmp_path):
    """Conversations created before, during and after a SIGKILL all reach the hook, once each."""
    app, client, token, agent = app_for_a_real_worker(make_app, seeded, sim_admin, sim_server)
    log = tmp_path / "worker.log"
    created: list[str] = []
    stop = threading.Event()

    def create_continuously() -> None:
        admin = httpx.Client(base_url=sim_server, timeout=5)
        from sim.testing import SimAdmin

        writer = SimAdmin(admin)
        while not stop.is_set() and len(created) < 40:
            created.append(talk(writer, agent, f"message {len(created)}"))
            time.sleep(0.2)
        admin.close()

    with receiver() as rec:
        hook = client.post(
            "/v1/hooks", json={"url": rec.url, "agent_id": agent}, headers=bearer(token)
        )
        assert hook.status_code == 201
        env = hook_worker_env(tmp_path, sim_server, BRIDGE_HOOK_TIMEOUT="2")
        creator = threading.Thread(target=create_continuously)
        try:
            with running_worker(env, log) as worker:
                creator.start()
                arrived = rec.wait_for(3, timeout=20)
                assert len(arrived) >= 3, log.read_text()[-3000:]
                rec.wait_for(len(arrived) + 1, timeout=5)
                time.sleep(0.4)
                # Kill between two polls: one killed mid-poll leaves its watch leased for
                # up to `detection.LEASE` (the next test).
                wait_until_no_poll_runs(app)
                worker.send_signal(signal.SIGKILL)
                worker.wait(5)
            killed_with = len(rec.received)
            time.sleep(1.5)
            assert len(rec.received) == killed_with
            with running_worker(env, log):
                time.sleep(2)
                stop.set()
                creator.join(10)
                rec.wait_for(len(created), timeout=30)
                time.sleep(1.5)
        finally:
            stop.set()
        counts = collections.Counter(rec.ids())
    assert sorted(pushed_ids(rec)) == sorted(created), log.read_text()[-3000:]
    assert set(counts.values()) == {1}
    assert killed_with < len(created)


def test_a_worker_killed_mid_poll_holds_the_agent_for_one_lease_at_most(
    make_app, seeded, sim_admin, sim_server, tmp_path
):
    """SIGKILL while a read is in flight (ZappWay answering slowly): the watch stays leased, as
    nobody can tell a dead worker from a slow one, but only until its last renewal runs out.
    A new worker then reads the agent and the hook gets the conversation within the lease and
    15 s (45 s), where a fixed lease long enough for a slow read (60 s) held it for a minute."""
    app, client, token, agent = app_for_a_real_worker(make_app, seeded, sim_admin, sim_server)
    log = tmp_path / "worker.log"
    lease_s = detection.LEASE.total_seconds()
    with receiver() as rec:
        hook = client.post(
            "/v1/hooks", json={"url": rec.url, "agent_id": agent}, headers=bearer(token)
        )
        assert hook.status_code == 201
        env = hook_worker_env(tmp_path, sim_server)
        sim_admin.add_fault("latency", path="/conversations$", seconds=lease_s * 3)
        with running_worker(env, log) as worker:
            wait_until(lambda: a_watch_is_leased(app), 10, "a poll in flight", log)
            worker.send_signal(signal.SIGKILL)
            worker.wait(5)
        killed_at = time.monotonic()
        sim_admin.clear_faults()
        created = talk(sim_admin, agent)
        with running_worker(env, log):
            arrived = rec.wait_for(1, timeout=lease_s + 15)
            took = time.monotonic() - killed_at
    assert pushed_ids(rec) == [created], log.read_text()[-3000:]
    assert took < lease_s + 15 <= 45, took
    assert len(arrived) == 1


def a_watch_is_leased(app) -> bool:
    """Whether a read is in flight (some watch holds a lease)."""
    with runtime_of(app).sessions() as session:
        return session.scalar(select(Watch.id).where(Watch.lease_token.is_not(None))) is not None
