"""Background work on Huey: SQLite queue under var/ by default, Redis when REDIS_URL is set.

Tasks are registered per app (closures over the app), so the web process enqueues and the
consumer (`python -m bridge.worker`) executes the same named tasks with the same settings.
Every task re-reads what it needs from the database; nothing is shared through memory.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import cast

from flask import Flask
from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from sqlalchemy import Engine, Table, or_
from sqlalchemy.orm import Session, sessionmaker

from bridge.config import Settings
from bridge.infra.models import Heartbeat, InboundEvent, Job
from bridge.infra.storage import purge_before, session_scope
from bridge.runs import idempotency

log = logging.getLogger(__name__)
QUEUE_NAME = "zappway-bridge"


def make_huey(settings: Settings) -> Huey:
    """Pick the queue backend from settings (immediate in-memory mode for unit tests)."""
    if settings.huey_immediate:
        return MemoryHuey(QUEUE_NAME, immediate=True)
    if settings.redis_url:
        return RedisHuey(QUEUE_NAME, url=settings.redis_url)
    settings.sqlite_queue_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str(settings.sqlite_queue_path))


def beat(sessions: sessionmaker[Session], name: str) -> None:
    """Record that a background process is alive (read by /readyz)."""
    with session_scope(sessions) as session:
        row = session.get(Heartbeat, name) or Heartbeat(name=name, runs=0)
        row.beat_at = datetime.now(UTC)
        row.runs += 1
        session.add(row)


def init_app(app: Flask) -> Huey:
    """Create the queue for this app and register its tasks."""
    settings: Settings = app.extensions["settings"]
    huey = make_huey(settings)
    sessions = app.extensions["sessions"]

    every = crontab(minute=f"*/{settings.housekeeping_minutes}")

    @huey.periodic_task(every, name="housekeeping")  # type: ignore[untyped-decorator]  # huey is untyped
    def housekeeping() -> None:
        """Periodic upkeep: heartbeat, expired idempotency records, old records (`_purge`)."""
        beat(sessions, "housekeeping")
        with session_scope(sessions) as session:
            purged = idempotency.purge_expired(session)
        if purged:
            log.info("housekeeping.idempotency_purged count=%d", purged)
        _purge(app.extensions["engine"], settings)

    from bridge.hooks import tasks as hook_tasks
    from bridge.registry import ACTIONS
    from bridge.runs import tasks as job_tasks
    from bridge.sync import tasks as sync_tasks

    runtime = app.extensions["runtime"]
    app.extensions["tasks"] = {
        "housekeeping": housekeeping,
        **job_tasks.register(huey, runtime, ACTIONS),
        **hook_tasks.register(huey, runtime),
        **sync_tasks.register(huey, runtime),
    }
    return huey


def _purge(engine: Engine, settings: Settings) -> None:
    """Delete what has outlived its retention, keeping anything still needed:

    - received CMS webhooks without a delivery key (refused requests, which anyone can send,
      and keyless deliveries). An accepted delivery's key is kept: it is what refuses a replay
      of that signed request, and several CMSs sign no time that would end a replay's window;
    - finished jobs whose result callback is not still being retried.
    """
    now = datetime.now(UTC)
    events, jobs = cast(Table, InboundEvent.__table__), cast(Table, Job.__table__)
    for column, days, only in (
        (events.c.received_at, settings.inbound_retention_days, events.c.delivery_key.is_(None)),
        (jobs.c.finished_at, settings.job_retention_days,
         or_(jobs.c.callback_state.is_(None), jobs.c.callback_state != "pending")),
    ):  # fmt: skip
        count = purge_before(engine, column, now - timedelta(days=days), only=only)
        if count:
            log.info("housekeeping.purged table=%s count=%d", column.table.name, count)


def main() -> None:
    """Run the consumer: `python -m bridge.worker` (the Procfile's worker line)."""
    from bridge import create_app

    app = create_app()
    huey: Huey = app.extensions["huey"]
    beat(app.extensions["sessions"], "worker")
    log.info("worker.start backend=%s", type(huey.storage).__name__)
    # Threads, not processes: tasks mostly wait on ZappWay, hooks and CMSs, and a tenant whose
    # upstream is slow holds only its own thread. max_delay bounds an idle SQLite consumer's sleep.
    consumer = huey.create_consumer(
        workers=app.extensions["settings"].worker_threads,
        worker_type="thread",
        periodic=True,
        max_delay=1.0,
    )
    consumer.run()


if __name__ == "__main__":
    main()
