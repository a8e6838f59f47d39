"""Inbound CMS sync under failure: nothing lost, nothing duplicated, no tenant stalls another.

Upstream faults come from the simulator (429 with Retry-After, 5xx, stalls, revoked keys, an
hour-long outage on its clock); two tests run real processes (marked slow): a worker killed
with SIGKILL mid-batch, and two processes sharing one key's budget through PostgreSQL + Redis.
Short `sync_retry_schedule` overrides keep the backoff tests to a few seconds of wall time.
"""

from __future__ import annotations

import email.utils
import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bridge.infra.models import DocumentMapping
from bridge.sync import state as sync_state
from tests.conftest import TEST_SECRET
from tests.processes import ROOT, running_worker, wait_until, worker_env
from tests.sync_helpers import (
    FAST,
    Bridge,
    Interposed,
    max_in_window,
    tenant,
    upsert_calls,
    upstream_documents,
)

UPSERT = "/upsert$"


@pytest.fixture
def unlimited(sim_admin):
    sim_admin.settings(rate_limit_enabled=False)


def texts(sim_app, datastore: str, source_id: str) -> dict[str, str]:
    """The upstream text of each of a source's documents, by CMS id."""
    return {
        key.split(":", 1)[1]: doc.text
        for key, doc in upstream_documents(sim_app, datastore).items()
        if key.startswith(source_id + ":")
    }


# --- 429 and Retry-After ---------------------------------------------------------------------


def test_429_retry_after_seconds_delays_the_next_call(make_app, seeded, sim_admin, unlimited):
    """After a 429 with `Retry-After: 2` the next upsert comes 2 s later; no attempt is spent."""
    app = make_app(**FAST)
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"text {n}") for n in range(5)))
    sim_admin.add_fault("rate_limit", path=UPSERT, times=1, retry_after=2)
    sim_admin.clear_requests()
    bridge.kick()
    assert bridge.states() == {"pending": 5}
    assert {row.attempts for row in bridge.rows()} == {0}
    bridge.drain()
    first, second = upsert_calls(sim_admin)
    assert (first["status"], second["status"]) == (429, 201)
    assert second["at"] - first["at"] >= 2.0
    assert bridge.states() == {"delivered": 5}


def test_429_retry_after_http_date_delays_the_next_call(
    make_app, seeded, sim_admin, sim_transport, unlimited
):
    """`Retry-After` given as an HTTP date is honoured too (RFC 9110 §10.2.3)."""
    answered: list[float] = []

    def busy_once(request: httpx.Request) -> httpx.Response | None:
        if not request.url.path.endswith("/upsert") or answered:
            return None
        answered.append(time.time())
        until = email.utils.formatdate(int(time.time()) + 3, usegmt=True)
        return httpx.Response(429, headers={"Retry-After": until}, json={"error": "slow down"})

    app = make_app(transport=Interposed(sim_transport, busy_once), **FAST)
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, [("d", 1, "text")])
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain()
    (delivered,) = upsert_calls(sim_admin)
    assert delivered["at"] >= int(answered[0]) + 3 - 0.01  # the date has whole seconds
    assert bridge.states() == {"delivered": 1}


# --- 5xx, timeouts, the retry schedule ------------------------------------------------------


def test_5xx_backs_off_on_the_schedule_then_delivers(make_app, seeded, sim_admin, unlimited):
    """Two 503s are retried after the schedule's delays (±20 % jitter), then the batch lands."""
    schedule = (0.4, 0.8, 30.0)
    app = make_app(**FAST, sync_retry_schedule=schedule)
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"text {n}") for n in range(3)))
    sim_admin.add_fault("status", status=503, path=UPSERT, times=2)
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain()
    calls = upsert_calls(sim_admin)
    assert [call["status"] for call in calls] == [503, 503, 201]
    assert calls[1]["at"] - calls[0]["at"] >= 0.8 * schedule[0]
    assert calls[2]["at"] - calls[1]["at"] >= 0.8 * schedule[1]
    assert bridge.states() == {"delivered": 3}
    assert {(row.attempts, row.last_error) for row in bridge.rows()} == {(2, None)}


def test_timed_out_upsert_is_retried_without_a_duplicate(
    make_app, seeded, sim_admin, sim_app, sim_server, unlimited
):
    """An upsert that timed out (but ran upstream) is sent again and replaces, not duplicates."""
    app = make_app(
        transport=None,
        upstream_base_url=f"{sim_server}/api/v1",
        upstream_read_timeout_s=0.5,
        sync_retry_schedule=(0.2, 0.2, 0.2),
        **FAST,
    )
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"text {n}") for n in range(4)))
    sim_admin.add_fault("stall", path=UPSERT, times=1, seconds=2)
    bridge.kick()
    bridge.drain()
    assert bridge.states() == {"delivered": 4}
    assert {row.attempts for row in bridge.rows()} == {1}  # one timeout, then delivered
    time.sleep(2.2)  # the stalled request finishes upstream after the bridge gave up on it
    assert texts(sim_app, datastore, source.id) == {f"d{n}": f"text {n}" for n in range(4)}


def test_schedule_exhausted_is_dead_visible_and_replayable(
    make_app, client, seeded, sim_admin, unlimited
):
    """A key refused until the schedule runs out dead-letters the documents with the reason,
    shown in the source's events; after a key rotation, replay delivers them."""
    app = make_app(**FAST, sync_retry_schedule=(0.1, 0.1))
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.change(source, "page", 1, "first text")
    sim_admin.revoke_key(seeded["key"])
    bridge.drain()
    row = bridge.row("page")
    assert (row.state, row.attempts) == ("dead", 3)
    me = bridge.client.get("/v1/me", headers=bridge.headers()).get_json()
    assert me["key_status"] == "rejected"
    events = bridge.client.get(f"/v1/sources/{source.id}/events", headers=bridge.headers())
    (document,) = events.get_json()[0]["documents"]
    assert document["state"] == "dead"
    assert "rejected the stored API key" in document["reason"]
    new_key = sim_admin.create_key(seeded["org"]["id"])
    rotated = bridge.client.post(
        "/v1/me/rotate-key", json={"api_key": new_key}, headers=bridge.headers()
    )
    assert rotated.status_code == 200
    replayed = bridge.client.post(f"/v1/sources/{source.id}/replay", headers=bridge.headers())
    assert (replayed.status_code, replayed.get_json()) == (202, {"replayed": 1})
    bridge.drain()
    assert bridge.row("page").state == "delivered"
    events = bridge.client.get(f"/v1/sources/{source.id}/events", headers=bridge.headers())
    assert events.get_json()[0]["documents"][0]["state"] == "delivered"


def test_refused_document_is_dead_in_events_and_replay_resends_it(
    make_app, seeded, sim_admin, sim_app, sim_transport, unlimited
):
    """A 422 for one document dead-letters it alone with ZappWay's reason; replay re-sends it."""
    refusing = [True]

    def refuse_poison(request: httpx.Request) -> httpx.Response | None:
        if refusing[0] and request.url.path.endswith("/upsert") and b"POISON" in request.read():
            return httpx.Response(
                422, json={"error": {"code": "UNPROCESSABLE", "message": "text too short"}}
            )
        return None

    app = make_app(transport=Interposed(sim_transport, refuse_poison), **FAST)
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    for n in range(6):
        bridge.change(source, f"d{n}", 1, "POISON" if n == 3 else f"fine {n}")
    bridge.drain()
    assert bridge.states() == {"delivered": 5, "dead": 1}
    events = bridge.client.get(f"/v1/sources/{source.id}/events", headers=bridge.headers())
    fates = {e["documents"][0]["cms_id"]: e["documents"][0] for e in events.get_json()}
    assert fates["d3"]["state"] == "dead"
    assert "text too short" in fates["d3"]["reason"]
    assert {fates[f"d{n}"]["state"] for n in (0, 1, 2, 4, 5)} == {"delivered"}
    refusing[0] = False
    replayed = bridge.client.post(f"/v1/sources/{source.id}/replay", headers=bridge.headers())
    assert replayed.get_json() == {"replayed": 1}
    bridge.drain()
    assert bridge.states() == {"delivered": 6}
    assert texts(sim_app, datastore, source.id)["d3"] == "POISON"


# --- a long outage -----------------------------------------------------------------------------


def test_upstream_down_for_an_hour_then_back_loses_and_duplicates_nothing(
    make_app, seeded, sim_admin, sim_app, unlimited
):
    """ZappWay answers 503 for an hour of simulator time while edits keep arriving; once it is
    back every document arrives once, at its newest version, and none was dead-lettered."""
    app = make_app(**FAST, sync_batch_size=20, sync_retry_schedule=(0.1, 0.2, 0.3) + (0.4,) * 20)
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    outage_end = sim_admin.advance_clock(0) + 3600
    sim_admin.add_fault("status", status=503, path=UPSERT, until=outage_end)
    sim_admin.clear_requests()
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"d{n} v1") for n in range(60)))
    bridge.kick()
    bridge.run_for(1.0)
    bridge.ingest_bulk(source, ((f"d{n}", 2, f"d{n} v2") for n in range(0, 60, 3)))
    bridge.ingest_bulk(source, ((f"new{n}", 1, f"new{n} v1") for n in range(10)))
    bridge.run_for(1.0)
    during = upsert_calls(sim_admin)
    assert during
    assert {call["status"] for call in during} == {503}
    assert "dead" not in bridge.states()
    assert texts(sim_app, datastore, source.id) == {}
    sim_admin.advance_clock(3601)  # the hour passes; the fault expires on the simulator clock
    bridge.drain()
    expected = {f"d{n}": f"d{n} v{2 if n % 3 == 0 else 1}" for n in range(60)}
    expected |= {f"new{n}": f"new{n} v1" for n in range(10)}
    assert texts(sim_app, datastore, source.id) == expected
    assert bridge.states() == {"delivered": 70}


def test_a_document_waiting_for_its_retry_does_not_hold_back_new_ones(
    make_app, seeded, sim_admin, sim_app, monkeypatch, unlimited
):
    """While one batch waits a long backoff, a document arriving later is still sent soon."""
    monkeypatch.setattr(sync_state, "RECHECK_S", 0.3)
    app = make_app(**FAST, sync_retry_schedule=(60.0,))
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    sim_admin.add_fault("status", status=500, path=UPSERT, times=1)
    bridge.change(source, "unlucky", 1, "failed once")
    bridge.run_for(0.5)
    assert bridge.row("unlucky").attempts == 1
    bridge.change(source, "later", 1, "arrives after the failure")
    bridge.run_for(1.5)
    assert bridge.row("later").state == "delivered"
    assert bridge.row("unlucky").state == "pending"  # still waiting out its 60 s backoff
    assert "later" in texts(sim_app, datastore, source.id)


def test_newer_version_arriving_mid_call_is_sent_after_it(
    make_app, seeded, sim_admin, sim_app, unlimited
):
    """A change that lands while the older version is on the wire is not marked delivered by
    that call (compare-and-set on the version); the next batch sends it."""
    app = make_app(**FAST)
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    bridge.ingest_bulk(source, [("doc", 1, "old text")])
    sim_admin.add_fault("latency", path=UPSERT, seconds=0.5, times=1)
    sim_admin.clear_requests()
    running = threading.Thread(
        target=bridge.tasks.sync_connection.call_local, args=(bridge.connection_id,)
    )
    running.start()
    time.sleep(0.2)  # the first upsert is waiting in the simulator
    bridge.ingest_bulk(source, [("doc", 2, "new text")])
    running.join(10)
    bridge.drain()
    assert [call["body"]["documents"][0]["text"] for call in upsert_calls(sim_admin)] == [
        "old text",
        "new text",
    ]
    assert texts(sim_app, datastore, source.id) == {"doc": "new text"}
    row = bridge.row("doc")
    assert (row.state, row.delivered_version) == ("delivered", row.version)


def leased_by_a_dead_run(bridge: Bridge, datastore_id: str, external_ids: list[str]) -> None:
    """The document leases a killed sync run left: never released, and run out (its process
    stopped renewing them; they end well before its marker is stale)."""
    ended = datetime.now(UTC) - timedelta(seconds=1)
    with bridge.runtime.sessions() as session:
        session.add_all(
            DocumentMapping(
                connection_id=bridge.connection_id, datastore_id=datastore_id,
                external_id=external_id, lease_token="sync-dead", lease_until=ended,
            )
            for external_id in external_ids
        )  # fmt: skip
        session.commit()


def test_sweep_restarts_a_lost_sync_but_not_a_live_one(make_app, seeded, sim_admin, unlimited):
    """A marker younger than `sync_stale_after_s` is a live task and is left alone; an older
    one was lost with its worker: the sweep syncs again, past the leases that run left."""
    app = make_app(**FAST, sync_stale_after_s=0.5)
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"text {n}") for n in range(3)))
    assert bridge.marker() is not None  # claimed for a task that is never run: it died
    leased_by_a_dead_run(bridge, source.datastore_id, [f"{source.id}:d{n}" for n in range(3)])
    sim_admin.clear_requests()
    bridge.tasks.sweep_syncs.call_local()
    assert bridge.states() == {"pending": 3}  # too young to be presumed dead
    assert upsert_calls(sim_admin) == []
    time.sleep(0.6)
    bridge.tasks.sweep_syncs.call_local()
    assert bridge.states() == {"delivered": 3}
    assert bridge.marker() is None


def test_a_webhook_that_takes_over_a_dead_runs_marker_frees_its_leases(
    make_app, seeded, sim_app, unlimited
):
    """A worker killed mid-batch leaves its marker and its document leases. When the next
    webhook, not the sweep, claims the stale marker, the sync it schedules goes on past those
    leases (run out by then: nobody renews them)."""
    app = make_app(**FAST, sync_stale_after_s=0.5)
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"text {n}") for n in range(3)))
    leased_by_a_dead_run(bridge, source.datastore_id, [f"{source.id}:d{n}" for n in range(3)])
    time.sleep(0.6)  # the marker is stale: its run is presumed dead
    bridge.change(source, "d0", 2, "newer text")  # claims the marker, schedules the sync
    bridge.drain(timeout=5)
    assert bridge.states() == {"delivered": 3}
    stored = upstream_documents(sim_app, source.datastore_id)
    texts = [stored[f"{source.id}:d{n}"].text for n in range(3)]
    assert texts == ["newer text", "text 1", "text 2"]


# --- revocation ---------------------------------------------------------------------------------


def test_revoked_connection_sends_nothing_more(make_app, seeded, sim_admin, unlimited):
    """Documents pending when the connection is revoked are dead-lettered, never sent."""
    app = make_app(**FAST)
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"text {n}") for n in range(120)))
    assert bridge.client.delete("/v1/me", headers=bridge.headers()).status_code == 204
    sim_admin.clear_requests()
    bridge.kick()
    bridge.drain()
    assert sim_admin.requests() == []
    assert bridge.states() == {"dead": 120}
    assert {row.last_error for row in bridge.rows()} == {"connection revoked"}
    assert bridge.marker() is None


def test_revocation_mid_sync_stops_before_the_next_call(make_app, seeded, sim_admin, unlimited):
    """A sync running when the connection is revoked stops: only a call already past its
    revocation check when the revocation committed may still start; no batch after it."""
    app = make_app(**FAST, sync_batch_size=5)
    bridge = Bridge(app, seeded["key"])
    source = bridge.create_source(seeded["datastores"][0]["id"])
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"text {n}") for n in range(40)))
    sim_admin.add_fault("latency", path=UPSERT, seconds=0.3)
    sim_admin.clear_requests()
    running = threading.Thread(
        target=bridge.tasks.sync_connection.call_local, args=(bridge.connection_id,)
    )
    running.start()
    deadline = time.monotonic() + 10
    while not upsert_calls(sim_admin) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert bridge.client.delete("/v1/me", headers=bridge.headers()).status_code == 204
    revoked_at = time.time()
    running.join(20)
    calls = upsert_calls(sim_admin)
    assert calls
    assert len([call for call in calls if call["at"] >= revoked_at]) <= 1
    states = bridge.states()
    assert states["delivered"] == 5 * len(calls)
    assert states["dead"] == 40 - 5 * len(calls)


# --- tenants ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "stall", "seconds": 30},
        {"kind": "status", "status": 500},
        {"kind": "rate_limit", "retry_after": 30},
    ],
    ids=["stall", "500", "429"],
)
def test_one_tenant_stalling_or_failing_does_not_hold_up_another(
    fault, make_app, seeded, sim_admin, sim_app, unlimited
):
    """Connection A's key stalls, fails or is throttled; B's documents go through meanwhile."""
    key_b, store_b = tenant(sim_admin, "Beta")
    app = make_app(**FAST, sync_retry_schedule=(30.0,))
    a, b = Bridge(app, seeded["key"]), Bridge(app, key_b)
    source_a = a.create_source(seeded["datastores"][0]["id"])
    source_b = b.create_source(store_b)
    a.ingest_bulk(source_a, ((f"a{n}", 1, f"a text {n}") for n in range(10)))
    b.ingest_bulk(source_b, ((f"b{n}", 1, f"b text {n}") for n in range(10)))
    sim_admin.add_fault(path=UPSERT, key=seeded["key"], **fault)
    sync_a = threading.Thread(target=a.tasks.sync_connection.call_local, args=(a.connection_id,))
    sync_a.start()
    time.sleep(0.2)  # A is inside its upsert call (stall) or already backing off
    b.tasks.sync_connection.call_local(b.connection_id)
    assert b.states() == {"delivered": 10}
    assert len(texts(sim_app, store_b, source_b.id)) == 10
    assert a.states() == {"pending": 10}
    sim_admin.clear_faults()  # releases A's stalled request
    sync_a.join(10)
    assert not sync_a.is_alive()


# --- real processes -------------------------------------------------------------------------


@pytest.mark.slow
def test_worker_killed_mid_batch_loses_nothing(
    make_app, seeded, sim_admin, sim_app, sim_server, tmp_path, unlimited
):
    """SIGKILL while an upsert is in flight; after a restart (and the sweep finding the lost
    task) every document is delivered once, at its newest version. Slow: real worker processes."""
    stale_s = 2.0
    app = make_app(
        transport=None,
        upstream_base_url=f"{sim_server}/api/v1",
        huey_immediate=False,
        sync_batch_size=10,
        sync_stale_after_s=stale_s,
        **FAST,
    )
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    bridge.ingest_bulk(source, ((f"d{n}", 1, f"d{n} v1") for n in range(100)))
    sim_admin.add_fault("latency", path=UPSERT, seconds=0.2)
    sim_admin.clear_requests()
    env = worker_env(tmp_path, sim_server, BRIDGE_SYNC_BATCH_SIZE="10",
                     BRIDGE_SYNC_STALE_AFTER=str(stale_s))  # fmt: skip
    log = tmp_path / "worker.log"
    with running_worker(env, log) as worker:
        bridge.kick()
        wait_until(lambda: len(upsert_calls(sim_admin)) >= 3, 30, "three batches")
        sim_admin.add_fault("stall", path=UPSERT, times=1, seconds=30)
        wait_until(lambda: not [f for f in sim_admin.faults() if f["kind"] == "stall"], 10,
                   "the next upsert to start")  # fmt: skip
        worker.send_signal(signal.SIGKILL)  # that upsert is in flight now
        worker.wait(5)
    killed_after = len(upsert_calls(sim_admin))
    # edits made while no worker runs, some to documents of the interrupted batch
    for n in range(0, 100, 7):
        bridge.change(source, f"d{n}", 2, f"d{n} v2")
    assert bridge.states()["pending"] > 0
    with running_worker(env, log):
        time.sleep(stale_s + 0.5)
        bridge.tasks.sweep_syncs.call_local()  # the minute's sweep, without waiting for it
        wait_until(lambda: bridge.states() == {"delivered": 100}, 60, "every document delivered")
    assert killed_after < 10
    expected = {f"d{n}": f"d{n} v{2 if n % 7 == 0 else 1}" for n in range(100)}
    assert texts(sim_app, datastore, source.id) == expected, log.read_text()[-3000:]


def sync_process(settings: dict, connection_id: str, start_at: float, stop_at: float) -> list[str]:
    """The command line of one `tests.sync_worker` process."""
    raw = json.dumps(settings)
    return [sys.executable, "-m", "tests.sync_worker", raw, connection_id,
            str(start_at), str(stop_at)]  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_two_processes_sharing_a_key_keep_to_its_budget(
    make_app, seeded, sim_admin, sim_server, pg_url, redis_url, tmp_path
):
    """Two processes drain two connections of one key through PostgreSQL + Redis: no 60 s window
    holds more than the plan's calls, and the budget is used again once the window has passed.
    Slow: the budget is per minute of wall time, so the test spans 70 s."""
    per_minute = 5
    key = sim_admin.create_key(seeded["org"]["id"], rate_limit=per_minute)
    settings = {
        "secret_key": TEST_SECRET,
        "var_dir": str(tmp_path / "var"),
        "database_url": pg_url,
        "redis_url": redis_url,
        "upstream_base_url": f"{sim_server}/api/v1",
        "sync_batch_size": 1,
        "upstream_max_retries": 0,
    }
    app = make_app(transport=None, huey_immediate=False, **settings)
    first, second = Bridge(app, key, plan=str(per_minute)), Bridge(app, key, plan=str(per_minute))
    datastore = seeded["datastores"][0]["id"]
    for n, bridge in enumerate((first, second)):
        source = bridge.create_source(datastore)
        bridge.ingest_bulk(source, ((f"p{n}-{m}", 1, f"text {m}") for m in range(12)))
    start_at = time.time() + 3
    stop_at = start_at + 70
    procs = [
        subprocess.Popen(
            sync_process(settings, bridge.connection_id, start_at, stop_at),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for bridge in (first, second)
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    calls = [r for r in sim_admin.requests() if r["key_last4"] == key[-4:]]
    assert all(call["status"] != 429 for call in calls)
    assert max_in_window([call["at"] for call in calls]) <= per_minute
    upserts = [call for call in calls if call["path"].endswith("/upsert")]
    assert len(upserts) > per_minute  # the window refilled and was used again
    assert all(result["delivered"] >= 1 for result in results)  # both processes sent
    assert sum(result["delivered"] for result in results) == len(upserts)
