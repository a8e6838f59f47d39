"""Health endpoints and the background queue, on the embedded and the Redis backends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from huey import Huey, RedisHuey, SqliteHuey
from sqlalchemy import select

from bridge.infra.models import Heartbeat, Job
from bridge.infra.queue import WorkerHeartbeat
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
