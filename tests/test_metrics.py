"""`GET /metrics`: who may read it, that it parses, and that the figures of every process add up.

In-process tests run in prometheus_client's single-process mode (the pytest process keeps its
series across tests, so they compare before and after). The last test runs the deployment's
shape for real: two gunicorn web processes and one `python -m bridge.worker` sharing one
multiprocess directory, and a known workload spread over them.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import httpx
import pytest
from huey.serializer import Serializer
from prometheus_client.parser import text_string_to_metric_families

from bridge import create_app
from bridge.config import Settings
from bridge.infra import metrics, queue
from bridge.infra.models import PendingDocument
from tests.conftest import ADMIN_TOKEN, TEST_SECRET, bearer, close_app, runtime_of
from tests.hooks.test_hooks import connect, deliveries_of, detect, drive, hook_app, subscribe, talk
from tests.processes import GUNICORN, gunicorn, running_worker, wait_until, worker_env
from tests.receivers import receiver
from tests.sources_helpers import signed_for, source_fields, token_of

METRICS_TOKEN = "metrics-token-for-tests-0123456789abcdef"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by (sample name, labels); raises on a malformed exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of a series over the labels not given."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def scrape(client, token: str = ADMIN_TOKEN) -> Samples:
    response = client.get("/metrics", headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def test_metrics_refuses_callers_without_the_token(client, connection):
    """No token, a wrong one, or a connection's token: 401, and no figure in the body."""
    for headers in ({}, bearer("wrong-token-0123456789"), bearer(connection["token"])):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "metrics_unauthorized"
        assert b"bridge_" not in response.get_data()


def test_metrics_token_and_admin_token_both_read(make_app):
    """BRIDGE_METRICS_TOKEN lets a scraper in without the admin token; the admin token too."""
    client = make_app(metrics_token=METRICS_TOKEN).test_client()
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN)).status_code == 200
    assert client.get("/metrics", headers=bearer(ADMIN_TOKEN)).status_code == 200
    assert client.get("/metrics", headers=bearer(METRICS_TOKEN[:-1])).status_code == 401


def test_metrics_disabled_without_any_token(make_app):
    """With neither token configured there is nothing to check a caller against: 403."""
    response = make_app(admin_token="").test_client().get("/metrics")
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "metrics_disabled"


def test_a_state_that_cannot_be_read_leaves_the_rest_of_the_scrape(base_settings, tmp_path):
    """With the database unusable (here: never migrated) the scrape still answers 200 with
    every counted series; only the states read from it are left out. An outage is when the
    counters matter most, and a failed scrape would hide them all."""
    empty = tmp_path / "never-migrated.sqlite3"
    app = create_app({**base_settings, "database_url": f"sqlite:///{empty}"})
    try:
        response = app.test_client().get("/metrics", headers=bearer(ADMIN_TOKEN))
    finally:
        close_app(app)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    samples = parse(response.get_data(as_text=True))
    assert any(name == "bridge_queue_depth" for name, _labels in samples)
    assert not any(name == "bridge_sync_documents" for name, _labels in samples)


def test_actions_upstream_calls_and_requests_are_counted(client, connection, seeded, sim_admin):
    """Three query_agent runs show as three actions, three upstream calls and three 200s of
    the action's route; labels hold the URL rule and operation, never a token or an id."""
    agent = seeded["agents"][0]["id"]
    before = scrape(client)
    sim_admin.clear_requests()
    for _ in range(3):
        response = client.post(
            "/v1/actions/query_agent",
            json={"agent_id": agent, "query": "Where is my order?"},
            headers=bearer(connection["token"]),
        )
        assert response.status_code == 200, response.get_json()
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"route": "/v1/actions/query_agent", "method": "POST", "status": "200"}
    assert delta("bridge_http_requests_total", **route) == 3
    assert delta("bridge_action_seconds_count", action="query_agent", outcome="ok") == 3
    sent = [r for r in sim_admin.requests() if r["path"].endswith("/query")]
    assert len(sent) == 3
    assert delta("bridge_upstream_calls_total", operation="query_agent", status="200") == 3
    assert delta("bridge_upstream_seconds_count", operation="query_agent") == 3
    assert delta("bridge_rate_wait_seconds_count", plan_rpm="60") >= 3
    label_values = {v for (_name, labels) in after for _k, v in labels}
    assert connection["token"] not in label_values
    assert agent not in " ".join(label_values)


def test_refused_actions_are_timed_with_their_error_code(client, connection, sim_admin):
    """A run ZappWay refuses counts under the error's code, not as ok."""
    before = scrape(client)
    sim_admin.add_fault("status", path="/query$", status=500, times=10)
    response = client.post(
        "/v1/actions/query_agent",
        json={"agent_id": "agent-x", "query": "hello"},
        headers=bearer(connection["token"]),
    )
    assert response.status_code == 502, response.get_json()
    after = scrape(client)
    code = response.get_json()["error"]["code"]
    labels = {"action": "query_agent", "outcome": code}
    counted = value(after, "bridge_action_seconds_count", **labels) - value(
        before, "bridge_action_seconds_count", **labels
    )
    assert counted == 1
    calls = {"operation": "query_agent", "status": "500"}
    assert value(after, "bridge_upstream_calls_total", **calls) > value(
        before, "bridge_upstream_calls_total", **calls
    )


def test_budget_and_upstream_429s_are_counted_per_plan(make_app, seeded, sim_admin):
    """A key past its plan's budget is refused by us (source=budget); ZappWay's own 429 counts
    as source=upstream; both under the plan's requests/minute."""
    app = make_app(plan_limits={"free": 2, "pro": 300}, upstream_rate_wait_s=0.0,
                   upstream_max_retries=0)  # fmt: skip
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    before = scrape(client)
    body = {"agent_id": seeded["agents"][0]["id"], "query": "hi"}
    sim_admin.add_fault("rate_limit", path="/query$", retry_after=1, times=1)
    first = client.post("/v1/actions/query_agent", json=body, headers=bearer(token))
    second = client.post("/v1/actions/query_agent", json=body, headers=bearer(token))
    assert (first.status_code, second.status_code) == (429, 429)
    after = scrape(client)
    for source in ("upstream", "budget"):
        labels = {"plan_rpm": "2", "source": source}
        counted = value(after, "bridge_rate_limited_total", **labels)
        assert counted - value(before, "bridge_rate_limited_total", **labels) == 1, source


def test_refused_webhooks_are_counted_by_provider_and_result(make_app, seeded):
    """A webhook with a wrong signature counts as rejected, never as accepted."""
    app = make_app(sync_debounce_s=0)
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    body = source_fields("standard_webhooks", seeded["datastores"][0]["id"])
    source = client.post("/v1/sources", json=body, headers=bearer(token)).get_json()
    before = scrape(client)
    signed = signed_for(
        source, "standard_webhooks", body=_article(1), secrets=["whsec_" + "A" * 32]
    )
    answer = client.post(source["inbound_path"], data=signed.body, headers=signed.headers)
    assert answer.status_code == 401
    after = scrape(client)
    for result, added in (("rejected", 1), ("accepted", 0)):
        labels = {"provider": "standard_webhooks", "result": result}
        counted = value(after, "bridge_inbound_events_total", **labels)
        assert counted - value(before, "bridge_inbound_events_total", **labels) == added


def test_hook_attempts_are_counted_by_outcome_with_the_delivery_lag(make_app, seeded, sim_admin):
    """A receiver that fails once then accepts: one retry, one delivered, one lag observed."""
    agent = seeded["agents"][0]["id"]
    with receiver([500], then=200) as rec:
        app = hook_app(make_app, hook_retry_schedule=(0, 0.05, 0.05))
        client = app.test_client()
        before = scrape(client)
        hook = subscribe(app, connect(app, seeded["key"]), rec.url, agent)
        talk(sim_admin, agent)
        detect(app)
        rec.wait_for(1)
        (delivery,) = deliveries_of(app, hook["id"])
        assert drive(app, delivery.id, {"delivered", "failed"}) == "delivered"
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("bridge_hook_deliveries_total", outcome="retry") == 1
    assert delta("bridge_hook_deliveries_total", outcome="delivered") == 1
    assert delta("bridge_hook_delivery_lag_seconds_count") == 1
    assert 0 < delta("bridge_hook_delivery_lag_seconds_sum") < 10


def test_pending_documents_queue_and_heartbeat_are_read_at_scrape(make_app, seeded):
    """Gauges of state come from the database and the queue: two pending documents, a queued
    sync task that has waited, and the worker's last beat."""
    app = make_app(huey_immediate=False, sync_debounce_s=0)
    client = app.test_client()
    created = client.post("/v1/connections", json={"api_key": seeded["key"]})
    token = created.get_json()["token"]
    body = source_fields("standard_webhooks", seeded["datastores"][0]["id"])
    source = client.post("/v1/sources", json=body, headers=bearer(token)).get_json()
    for n in range(2):
        request = signed_for(source, "standard_webhooks", body=_article(n), msg_id=f"msg_p{n}")
        answer = client.post(source["inbound_path"], data=request.body, headers=request.headers)
        assert answer.status_code == 202, answer.get_json()
    queue.beat(runtime_of(app).sessions, "worker")
    time.sleep(0.3)
    samples = scrape(client)
    assert value(samples, "bridge_sync_documents", state="pending") == 2
    assert value(samples, "bridge_sync_documents", state="dead") == 0
    assert value(samples, "bridge_queue_depth") >= 1
    assert value(samples, "bridge_queue_oldest_task_age_seconds") >= 0.3
    seen = value(samples, "bridge_worker_last_seen_timestamp_seconds", role="worker")
    assert time.time() - 60 < seen <= time.time()
    with runtime_of(app).sessions() as session:
        assert session.query(PendingDocument).count() == 2


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def queue_settings(request, tmp_path) -> Settings:
    """Settings for the embedded (SQLite) queue, then for the Redis one."""
    fields = {"var_dir": tmp_path, "secret_key": TEST_SECRET}
    if request.param == "redis":
        fields["redis_url"] = request.getfixturevalue("redis_url")
    return Settings.for_tests(fields)


def test_queue_messages_carry_the_time_they_were_queued(queue_settings):
    """A task's message is stamped when queued; both this release and an older one read it, and
    unstamped data (a result, a task queued by an older release) still reads."""
    settings = queue_settings
    huey = queue.make_huey(settings)

    @huey.task()
    def add(a: int, b: int) -> int:
        return a + b

    add(1, 2)
    assert queue.backlog(huey)["pending"] == 1
    time.sleep(0.2)
    waiting = queue.backlog(huey)
    age = waiting["oldest_wait_s"]
    assert waiting["pending"] == 1 and age is not None and 0.2 <= age < 5
    raw = huey.storage.enqueued_items(1)[0]
    assert queue.StampedSerializer.queued_at(raw) is not None
    assert huey.deserialize_task(raw).args == (1, 2)
    assert Serializer().deserialize(raw).args == (1, 2)  # a worker of an older release
    unstamped = Serializer().serialize({"r": 3})
    assert queue.StampedSerializer.queued_at(unstamped) is None
    assert queue.StampedSerializer().deserialize(unstamped) == {"r": 3}
    assert queue.backlog(queue.make_huey(settings))["pending"] == 1


def test_master_start_forgets_only_dead_processes(tmp_path):
    """At a gunicorn master's start, files of processes still running (a bridge worker, another
    master's workers) stay; those of exited processes go."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    live = tmp_path / f"counter_{os.getpid()}.db"
    dead = tmp_path / f"counter_{gone.pid}.db"
    for path in (live, dead):
        path.write_bytes(b"x")
    metrics.prepare_directory(tmp_path)
    assert live.exists()
    assert not dead.exists()


# --- real processes: two gunicorn web processes and one worker -----------------------------


def _article(n: int) -> bytes:
    return json.dumps({
        "type": "article.updated", "timestamp": "2024-05-01T10:00:00Z",
        "data": {"id": f"art_{n}", "title": f"Article {n}", "text": f"<p>Body {n}</p>",
                 "updated_at": "2024-05-01T09:59:00Z"},
    }).encode()  # fmt: skip


def _scrape_http(base: str) -> Samples:
    response = httpx.get(f"{base}/metrics", headers=bearer(METRICS_TOKEN), timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


@pytest.mark.slow
@pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed")
def test_counts_add_up_over_two_web_processes_and_a_worker(tmp_path, sim_server, sim_admin, seeded):
    """6 actions and 9 webhooks alternate between two gunicorn masters; one bridge worker
    drains the 8 distinct documents. Either master's /metrics shows the exact totals of all
    three processes, matching the simulator's own log of calls."""
    shared = tmp_path / "var"
    shared.mkdir()
    env = {
        "BRIDGE_SECRET_KEY": secrets.token_urlsafe(36),
        "BRIDGE_VAR_DIR": str(shared),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.sqlite3'}",
        "ZAPPWAY_BASE_URL": f"{sim_server}/api/v1",
        "BRIDGE_METRICS_TOKEN": METRICS_TOKEN,
        "BRIDGE_FREE_RPM": "100000",
        "BRIDGE_SYNC_DEBOUNCE": "0",
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    agent = seeded["agents"][0]["id"]
    datastore = seeded["datastores"][0]["id"]
    with (
        gunicorn(tmp_path / "a", **env) as (web_a, _log_a, _server_a),
        gunicorn(tmp_path / "b", **env) as (web_b, _log_b, _server_b),
    ):
        webs = (web_a, web_b)
        created = httpx.post(f"{web_a}/v1/connections", json={"api_key": seeded["key"]})
        assert created.status_code == 201, created.text
        headers = bearer(created.json()["token"])
        sim_admin.clear_requests()
        for n in range(6):
            answer = httpx.post(
                f"{webs[n % 2]}/v1/actions/query_agent", headers=headers, timeout=30,
                json={"agent_id": agent, "query": f"question {n}"},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
        body = source_fields("standard_webhooks", datastore)
        source = httpx.post(f"{web_b}/v1/sources", json=body, headers=headers).json()
        for n in range(9):  # the last repeats the first message: a duplicate
            signed = signed_for(source, "standard_webhooks", body=_article(n % 8),
                                msg_id=f"msg_{n % 8}")  # fmt: skip
            answer = httpx.post(f"{webs[n % 2]}{source['inbound_path']}",
                                content=signed.body, headers=signed.headers)  # fmt: skip
            assert answer.status_code == (200 if n == 8 else 202), answer.text

        worker_log = tmp_path / "worker.log"
        with running_worker(worker_env(tmp_path, sim_server, BRIDGE_ENV="production", **env),
                            worker_log) as worker:  # fmt: skip

            def upserted() -> int:
                return sum(
                    len(r["body"]["documents"])
                    for r in sim_admin.requests()
                    if r["method"] == "POST" and r["path"].endswith("/upsert")
                )

            wait_until(lambda: upserted() >= 8, 60, "the worker's upserts")
            time.sleep(0.5)  # the worker records its calls right after each answer
            upsert_calls = sum(1 for r in sim_admin.requests() if r["path"].endswith("/upsert"))
            query_calls = sum(1 for r in sim_admin.requests() if r["path"].endswith("/query"))
            assert (upserted(), query_calls) == (8, 6)

            pids = {path.stem.rpartition("_")[2] for path in (shared / "metrics").glob("*.db")}
            assert str(worker.pid) in pids
            assert len(pids) == 3, pids  # the two web processes and the worker

            scrapes = [_scrape_http(web) for web in webs]
    for samples in scrapes:
        action = {"route": "/v1/actions/query_agent", "method": "POST"}
        inbound = {"route": "/in/<token>", "method": "POST"}
        assert value(samples, "bridge_http_requests_total", **action, status="200") == 6
        assert value(samples, "bridge_http_requests_total", **inbound, status="202") == 8
        assert value(samples, "bridge_http_requests_total", **inbound, status="200") == 1
        assert value(samples, "bridge_action_seconds_count", action="query_agent",
                     outcome="ok") == 6  # fmt: skip
        assert value(samples, "bridge_upstream_calls_total", operation="query_agent",
                     status="200") == query_calls  # fmt: skip
        provider = {"provider": "standard_webhooks"}
        assert value(samples, "bridge_inbound_events_total", **provider, result="accepted") == 8
        assert value(samples, "bridge_inbound_events_total", **provider, result="duplicate") == 1
        # The worker's share: its upsert calls and the documents its batches carried.
        assert total(samples, "bridge_upstream_calls_total", operation="upsert") == upsert_calls
        assert value(samples, "bridge_sync_batch_documents_sum") == 8
        assert value(samples, "bridge_sync_documents", state="pending") == 0
        assert value(samples, "bridge_worker_last_seen_timestamp_seconds", role="worker") > 0
        assert token_of(source) not in repr(samples)
