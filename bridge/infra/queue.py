"""The task queue (Huey): a SQLite file under var/ by default, Redis when REDIS_URL is set.

Features register their tasks on the one `Huey` the app factory makes here, so the web process
enqueues and the consumer (`python -m bridge.worker`) runs the same named tasks with the same
settings. Every task re-reads what it needs from the database; nothing is shared through memory.
The heartbeat is how `/readyz` knows a worker is alive.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from datetime import UTC, datetime
from typing import Any

from huey import Huey, MemoryHuey, RedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer
from huey.registry import Message
from huey.serializer import Serializer
from huey.signals import SIGNAL_INTERRUPTED
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bridge.config import Settings
from bridge.infra.models import Heartbeat
from bridge.infra.storage import session_scope

QUEUE_NAME = "zappway-bridge"
log = logging.getLogger(__name__)
# Set once this process is asked to stop (SIGTERM): per-process, like the process's own life.
_STOPPING = threading.Event()


def stopping() -> bool:
    """True once this worker was told to stop: a long task ends after its current step and
    reschedules the rest, so a restarted worker goes on at once instead of after a lease."""
    return _STOPPING.is_set()


def make_huey(settings: Settings) -> Huey:
    """Pick the queue backend from settings (immediate in-memory mode for unit tests)."""
    if settings.huey_immediate:
        return MemoryHuey(QUEUE_NAME, immediate=True)
    if settings.redis_url:
        return RedisHuey(QUEUE_NAME, url=settings.redis_url, serializer=StampedSerializer())
    settings.sqlite_queue_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str(settings.sqlite_queue_path),
                      serializer=StampedSerializer())  # fmt: skip


class StampedSerializer(Serializer):  # type: ignore[misc]  # huey is untyped
    """huey's pickle serializer, with the time a task entered the queue after its pickle.

    huey's messages carry no such time, and the age of the oldest waiting task is what tells an
    operator the workers are behind. `pickle.loads` ignores bytes past the end of a pickle, so
    the format does not change for a reader: a worker of an older release reads a stamped
    message as before, and unstamped data (results, older tasks) reads here as before.
    """

    MARK = b"\x00bridge-queued-at:"
    STAMP = struct.Struct("!d")

    def serialize(self, data: Any) -> bytes:
        raw: bytes = super().serialize(data)
        if isinstance(data, Message):
            return raw + self.MARK + self.STAMP.pack(time.time())
        return raw

    @classmethod
    def queued_at(cls, data: bytes) -> float | None:
        """When a serialized task was queued (Unix time), or None when it carries no stamp."""
        data, size = bytes(data), cls.STAMP.size
        if data[-size - len(cls.MARK) : -size] != cls.MARK:
            return None
        (stamp,) = cls.STAMP.unpack(data[-size:])
        return float(stamp)


def beat(sessions: sessionmaker[Session], name: str) -> None:
    """Record that a background process is alive (read by /readyz)."""
    with session_scope(sessions) as session:
        row = session.get(Heartbeat, name) or Heartbeat(name=name, runs=0)
        row.beat_at = datetime.now(UTC)
        row.runs += 1
        session.add(row)


def last_beats(engine: Engine) -> dict[str, datetime]:
    """When each background process (by its role's name) last beat."""
    with engine.connect() as db:
        rows = db.execute(select(Heartbeat.name, Heartbeat.beat_at)).all()
    return {name: at if at.tzinfo else at.replace(tzinfo=UTC) for name, at in rows}


def last_beat_age_s(engine: Engine) -> float | None:
    """Seconds since any background process last beat, or None when none ever did."""
    with engine.connect() as db:
        latest = db.scalar(select(Heartbeat.beat_at).order_by(Heartbeat.beat_at.desc()).limit(1))
    if latest is None:
        return None
    if latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)
    return round((datetime.now(UTC) - latest).total_seconds(), 1)


def backlog(huey: Huey) -> dict[str, Any]:
    """What waits in the queue: tasks ready to run now, tasks scheduled for later, and how long
    the next one to run has waited (from the time `StampedSerializer` appends; None when the
    queue is empty or its head predates the stamp)."""
    pending = int(huey.pending_count())
    waited = None
    if pending:
        head = huey.storage.enqueued_items(1)
        stamp = StampedSerializer.queued_at(head[0]) if head else None
        waited = None if stamp is None else round(max(0.0, time.time() - stamp), 3)
    return {"pending": pending, "scheduled": int(huey.scheduled_count()), "oldest_wait_s": waited}


def redis_reachable(url: str) -> bool:
    """One PING with a short timeout (the queue and the rate budget live there)."""
    import redis  # imported here: a deployment without Redis never loads the client

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class BeatThread:
    """Beats every `every_s` seconds from a daemon thread while the worker process lives, so
    `/readyz` tells a stopped or wedged worker within `BRIDGE_WORKER_GONE_AFTER` (the periodic
    heartbeat task only runs every few minutes). A failed beat (database down) is logged and
    tried again at the next tick."""

    def __init__(self, sessions: sessionmaker[Session], name: str, every_s: float) -> None:
        self._sessions = sessions
        self._name = name
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-beat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            try:
                beat(self._sessions, self._name)
            except Exception:  # the next tick tries again: never end the thread
                log.warning("worker.beat_failed")
            if self._stop.wait(self._every_s):
                return


class WorkerHeartbeat:
    """A periodic task that beats every `minutes`, so a live worker shows up in /readyz."""

    def __init__(self, huey: Huey, sessions: sessionmaker[Session], minutes: int) -> None:
        every = crontab(minute=f"*/{minutes}")

        @huey.periodic_task(every, name="heartbeat")  # type: ignore[untyped-decorator]  # huey is untyped
        def heartbeat() -> None:
            beat(sessions, "housekeeping")

        self.task = heartbeat


class GracefulConsumer(Consumer):  # type: ignore[misc]  # huey is untyped
    """Huey's consumer, with SIGTERM (what Heroku and systemd send) as the graceful signal:
    no new task is started, the running ones get `stop_timeout_s` to finish (`stopping()`
    tells them to wrap up), and any still running then is handed back to the queue."""

    def _handle_signal(self, signum: int, frame: Any) -> None:
        _STOPPING.set()
        super()._handle_signal(signum, frame)


def run_consumer(huey: Huey, threads: int, stop_timeout_s: float) -> None:
    """Run tasks until stopped (the Procfile's worker line)."""

    @huey.signal(SIGNAL_INTERRUPTED)  # type: ignore[untyped-decorator]  # huey is untyped
    def hand_back(_signal: str, task: Any) -> None:
        """A task still running when the stop timeout ran out is queued again, at once: the
        worker exits with it unfinished, and every task is safe to run twice."""
        log.warning("worker.hand_back task=%s", task.name)
        huey.enqueue(task)

    # Threads, not processes: tasks mostly wait on ZappWay, hooks and CMSs, and a tenant whose
    # upstream is slow holds only its own thread. max_delay bounds an idle SQLite consumer's sleep.
    consumer = GracefulConsumer(
        huey, workers=threads, worker_type="thread", periodic=True, max_delay=1.0,
        graceful_signal="TERM", shutdown_timeout=stop_timeout_s,
    )  # fmt: skip
    consumer.run()
