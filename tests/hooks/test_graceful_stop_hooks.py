"""SIGTERM to a worker in the middle of hook work hands it back at once (issue 16, item 3).

Real processes (`python -m bridge.worker`), a real receiver and the simulator on a socket: a
delivery batch in flight against a slow receiver, or a detection poll against a slow simulator,
is stopped; no delivery or watch lease is left behind, and a restarted worker delivers every
event within seconds (a lease lasts 30 s), each `webhook-id` once unless it was cut mid-POST.
"""

from __future__ import annotations

import collections
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bridge.hooks import deliveries, detection
from bridge.infra.models import Delivery, Watch
from bridge.registry import trigger_for
from tests.conftest import bearer, runtime_of
from tests.hooks.test_detection_restart import SETTINGS, hook_worker_env, talk
from tests.processes import running_worker, stop_cleanly, wait_until
from tests.receivers import HANG, receiver

pytestmark = pytest.mark.slow
LOOKUP = re.compile(r"/conversations/[^/]+$")  # one conversation's messages (`render`)
NEW_CONVERSATION = trigger_for("new_conversation")
PROMPT_S = 12  # a restarted worker's delivery of everything; a lease lasts 30 s


def env_for(tmp_path: Path, sim_server: str, stop_timeout: float) -> dict[str, str]:
    """A hook worker whose deliveries may take 30 s, so only the stop timeout cuts them."""
    return hook_worker_env(tmp_path, sim_server, BRIDGE_HOOK_TIMEOUT="30",
                           BRIDGE_WORKER_STOP_TIMEOUT=str(stop_timeout))  # fmt: skip


def states(app) -> dict[str, int]:
    with runtime_of(app).sessions() as session:
        rows = session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
        return dict(rows.all())


def leases_held(app) -> int:
    now = datetime.now(UTC)
    with runtime_of(app).sessions() as session:
        deliveries = session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.lease_until > now)
        )
        watches = session.scalar(
            select(func.count()).select_from(Watch).where(Watch.lease_until > now)
        )
    return int(deliveries or 0) + int(watches or 0)


@pytest.fixture
def hooked(make_app, seeded, sim_admin, sim_server):
    """An app sharing the worker's files, a connection and its token, and an agent."""
    sim_admin.settings(rate_limit_enabled=False)
    app = make_app(**SETTINGS, huey_immediate=False, upstream_base_url=f"{sim_server}/api/v1")
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    return app, token, seeded["agents"][0]["id"]


def subscribe(app, token: str, agent: str, url: str) -> None:
    hook = app.test_client().post(
        "/v1/hooks", json={"url": url, "agent_id": agent}, headers=bearer(token)
    )
    assert hook.status_code == 201, hook.get_json()


def test_sigterm_mid_delivery_round_records_answers_and_hands_back_the_rest(
    hooked, sim_admin, sim_server, tmp_path
):
    """30 deliveries (batches of 25 and 5, 10 POSTs at a time) to a receiver answering in
    1.5 s: SIGTERM during the first round. The worker starts no new POST, records the answers
    in flight (15) and exits; the rest are unleased and queued; a restarted worker sends
    exactly those at once: 30 deliveries, 30 requests, no id twice."""
    app, token, agent = hooked
    slow = threading.Event()
    slow.set()

    def answer():
        if slow.is_set():
            time.sleep(1.5)
        return 200

    log = tmp_path / "worker.log"
    with receiver(then=answer) as rec:
        subscribe(app, token, agent, rec.url)
        created = [talk(sim_admin, agent, f"message {n}") for n in range(30)]
        env = env_for(tmp_path, sim_server, stop_timeout=20)
        with running_worker(env, log) as worker:
            wait_until(lambda: len(rec.received) >= 15, 30, "the first round of POSTs", log)
            time.sleep(0.3)  # no more arrive: the round is 10 + 5
            sent_when_stopped = len(rec.received)
            took = stop_cleanly(worker, log)
        assert len(rec.received) == sent_when_stopped < 30  # no new round after SIGTERM
        assert took < 5, log.read_text()[-3000:]  # waited for the round, not the whole batch
        assert states(app) == {"delivered": sent_when_stopped, "pending": 30 - sent_when_stopped}
        assert leases_held(app) == 0
        slow.clear()
        with running_worker(env, log):
            wait_until(lambda: states(app) == {"delivered": 30}, PROMPT_S, "all delivered", log)
        counts = collections.Counter(rec.ids())
    assert len(counts) == len(created) == 30
    assert set(counts.values()) == {1}  # the recorded answers were not sent again


def test_sigterm_hands_back_a_batch_stuck_past_the_stop_timeout_unleased(
    hooked, sim_admin, sim_server, tmp_path
):
    """A receiver that does not answer holds the batch past BRIDGE_WORKER_STOP_TIMEOUT: the
    worker exits after the timeout with the deliveries unleased, and a restarted worker
    delivers them within seconds (same `webhook-id`), not after the lease."""
    app, token, agent = hooked
    hanging = threading.Event()
    hanging.set()
    log = tmp_path / "worker.log"
    with receiver(then=lambda: HANG if hanging.is_set() else 200) as rec:
        subscribe(app, token, agent, rec.url)
        created = [talk(sim_admin, agent, f"message {n}") for n in range(3)]
        env = env_for(tmp_path, sim_server, stop_timeout=2)
        with running_worker(env, log) as worker:
            wait_until(lambda: len(rec.received) >= 3, 30, "the POSTs in flight", log)
            took = stop_cleanly(worker, log)
        assert 1.5 < took < 8, log.read_text()[-3000:]
        assert "worker.hand_back task=deliver_batch" in log.read_text()
        assert leases_held(app) == 0
        hanging.clear()
        with running_worker(env, log):
            wait_until(lambda: states(app) == {"delivered": 3}, PROMPT_S, "all delivered", log)
        ids = rec.ids()
    assert len(set(ids)) == len(created)
    assert len(ids) == 6  # each cut POST sent again once, with its id


@pytest.mark.parametrize(
    ("latency", "stop_timeout"),
    [pytest.param(8, 2, id="read-outlives-the-stop-timeout"),
     pytest.param(2, 10, id="stops-before-the-lookups")],
)  # fmt: skip
def test_sigterm_mid_poll_frees_the_watch_and_a_restart_polls_at_once(
    hooked, sim_admin, sim_server, tmp_path, latency, stop_timeout
):
    """A poll whose conversation list is slow is stopped: the watch is left unleased with its
    cursor unmoved; a read that ends before the timeout makes no per-conversation lookups; and
    a restarted worker delivers the new conversations within seconds, each once."""
    app, token, agent = hooked
    log = tmp_path / "worker.log"
    with receiver() as rec:
        subscribe(app, token, agent, rec.url)
        created = [talk(sim_admin, agent, f"message {n}") for n in range(3)]
        sim_admin.add_fault("latency", path="/conversations$", seconds=latency)
        sim_admin.clear_requests()
        env = env_for(tmp_path, sim_server, stop_timeout=stop_timeout)
        with running_worker(env, log) as worker:
            wait_until(lambda: leases_held(app) > 0, 30, "a poll in flight", log)
            time.sleep(0.5)
            took = stop_cleanly(worker, log)
        assert took < min(latency, stop_timeout) + 3, log.read_text()[-3000:]
        assert leases_held(app) == 0
        assert rec.received == []
        lookups = [r for r in sim_admin.requests() if LOOKUP.search(r["path"])]
        assert lookups == []
        sim_admin.clear_faults()
        with running_worker(env, log):
            rec.wait_for(len(created), timeout=PROMPT_S)
            time.sleep(0.5)
        counts = collections.Counter(rec.ids())
    assert len(counts) == len(created), log.read_text()[-3000:]
    assert set(counts.values()) == {1}


def test_a_hand_back_frees_only_the_leases_this_process_holds(hooked, sim_admin):
    """The stop timeout's hand-back frees a delivery or watch lease only where it is this
    process's own: one another worker took (here, a claim made outside any running task) is
    left to it, so two workers never send one delivery or read one agent at once."""
    app, token, agent = hooked
    runtime = runtime_of(app)
    with receiver() as rec:
        subscribe(app, token, agent, rec.url)
    talk(sim_admin, agent)
    time.sleep(0.1)
    with runtime.sessions() as session:
        (watch_id,) = session.scalars(select(Watch.id))
        watch = session.get(Watch, watch_id)
        connection_id = watch.connection_id
    detection.refresh(runtime, NEW_CONVERSATION, connection_id, agent, max_age_s=0)
    with runtime.sessions() as session:
        (delivery_id,) = session.scalars(select(Delivery.id))
    assert deliveries._claim(runtime, [delivery_id]).won == [delivery_id]  # another worker's
    with runtime.sessions() as session:
        assert detection._claim(session, watch_id, max_age_s=0) is not None  # another worker's
    assert deliveries.release(runtime, [delivery_id]) == 0
    detection.release_for_restart(runtime, watch_id)
    assert leases_held(app) == 2
