"""Health endpoints and the background queue, on the embedded and the Redis backends."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from huey import Huey, RedisHuey, SqliteHuey
from sqlalchemy import select

from bridge.infra.models import Heartbeat, Job
from bridge.infra.queue import BeatThread, WorkerHeartbeat
from bridge.runtime import Runtime
from bridge.web import context
from bridge.web.context import service_of
from tests.conftest import housekeeping, runtime_of


def test_healthz_is_alive(client):
    """/healthz answers 200 without touching dependencies."""
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_reports_database_and_queue(client):
    """/readyz checks the database and the queue."""
    body = client.get("/readyz").get_json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["queue"] == "ok"


def test_readyz_is_503_when_database_is_down(make_app):
    """An unreachable database makes /readyz answer 503 naming it, without the URL."""
    app = make_app(huey_immediate=True)
    from sqlalchemy import create_engine

    runtime_of(app).engine.dispose()
    unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")
    app.extensions[context.KEY][Runtime] = replace(runtime_of(app), engine=unreachable)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == "unreachable"
    assert "nobody" not in response.get_data(as_text=True)


def test_housekeeping_records_a_heartbeat(app):
    """The periodic heartbeat runs with the worker's upkeep and records the worker as alive."""
    housekeeping(app)
    with runtime_of(app).sessions() as session:
        assert session.get(Heartbeat, "housekeeping").runs == 1
    assert app.test_client().get("/readyz").get_json()["checks"]["worker_last_seen_s"] >= 0


def test_embedded_queue_is_sqlite_under_var(make_app, tmp_path):
    """Without REDIS_URL the queue is a SQLite file under var/ and a task round-trips through it."""
    app = make_app(huey_immediate=False)
    huey = service_of(app, Huey)
    assert isinstance(huey, SqliteHuey)
    assert (tmp_path / "var" / "queue.sqlite3").exists()
    service_of(app, WorkerHeartbeat).task()
    task = huey.dequeue()
    huey.execute(task)
    with runtime_of(app).sessions() as session:
        assert session.get(Heartbeat, "housekeeping").runs == 1


def test_redis_queue_when_configured(make_app, redis_url):
    """With REDIS_URL the queue lives in Redis and tasks round-trip through it."""
    app = make_app(huey_immediate=False, redis_url=redis_url)
    huey = service_of(app, Huey)
    assert isinstance(huey, RedisHuey)
    service_of(app, WorkerHeartbeat).task()
    assert huey.pending_count() == 1
    huey.execute(huey.dequeue())
    with runtime_of(app).sessions() as session:
        assert session.get(Heartbeat, "housekeeping").runs == 1
    assert app.test_client().get("/readyz").get_json()["checks"]["queue"] == "ok"


def test_housekeeping_forgets_finished_jobs_past_their_retention(app, connection):
    """Finished jobs older than BRIDGE_JOB_RETENTION_DAYS go; newer ones, unfinished ones and
    ones whose callback is still being retried (however old) stay."""
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=8), now - timedelta(days=1)
    jobs = {"old": (old, None), "old-called-back": (old, "delivered"), "recent": (recent, None),
            "running": (None, None), "old-calling-back": (old, "pending")}  # fmt: skip
    with runtime_of(app).sessions() as session:
        for job_id, (finished_at, callback_state) in jobs.items():
            session.add(Job(
                id=job_id, connection_id=connection["id"], action="query_agent",
                state="running" if finished_at is None else "done", input_json="{}",
                callback_state=callback_state, created_at=now - timedelta(days=30),
                finished_at=finished_at,
            ))  # fmt: skip
        session.commit()
    housekeeping(app)
    with runtime_of(app).sessions() as session:
        assert sorted(session.scalars(select(Job.id))) == [
            "old-calling-back", "recent", "running"
        ]  # fmt: skip


def _beat_at(app, name: str, at: datetime) -> None:
    with runtime_of(app).sessions() as session:
        session.merge(Heartbeat(name=name, beat_at=at, runs=1))
        session.commit()


def test_readyz_is_503_when_the_worker_is_gone(make_app):
    """A worker last seen longer ago than BRIDGE_WORKER_GONE_AFTER makes /readyz 503 `gone`;
    a recent beat makes it ready again."""
    app = make_app(worker_gone_after_s=60)
    _beat_at(app, "worker", datetime.now(UTC) - timedelta(seconds=90))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["worker"] == "gone"
    assert response.get_json()["checks"]["worker_last_seen_s"] >= 90
    _beat_at(app, "worker", datetime.now(UTC))
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"]["worker"] == "ok"


def test_readyz_reports_the_queue_backlog(make_app):
    """/readyz counts the tasks waiting in the queue and those a consumer set aside for later."""
    app = make_app(huey_immediate=False)
    huey = service_of(app, Huey)
    service_of(app, WorkerHeartbeat).task()
    service_of(app, WorkerHeartbeat).task.schedule(delay=600)
    backlog = app.test_client().get("/readyz").get_json()["checks"]["backlog"]
    assert (backlog["pending"], backlog["scheduled"]) == (2, 0)
    assert backlog["oldest_wait_s"] is not None and backlog["oldest_wait_s"] >= 0
    huey.add_schedule(huey.dequeue())
    backlog = app.test_client().get("/readyz").get_json()["checks"]["backlog"]
    assert (backlog["pending"], backlog["scheduled"]) == (1, 1)


def test_readyz_checks_redis_when_configured(make_app, redis_url):
    """With REDIS_URL, /readyz pings Redis; an unreachable Redis is 503 without its URL."""
    app = make_app(huey_immediate=False, redis_url=redis_url)
    assert app.test_client().get("/readyz").get_json()["checks"]["redis"] == "ok"
    down = make_app(redis_url="redis://:hunter2@127.0.0.1:9/0")
    response = down.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"] == "unreachable"
    assert "hunter2" not in response.get_data(as_text=True)


def test_worker_process_beats_while_it_runs(make_app, tmp_path):
    """The worker's beat thread records it every few seconds, so /readyz sees it alive."""
    app = make_app()
    beat = BeatThread(runtime_of(app).sessions, "worker", every_s=0.05)
    beat.start()
    time.sleep(0.3)
    beat.stop()
    with runtime_of(app).sessions() as session:
        assert session.get(Heartbeat, "worker").runs >= 3
    assert app.test_client().get("/readyz").get_json()["checks"]["worker"] == "ok"
