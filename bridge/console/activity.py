"""Each connection's API requests, recorded in microseconds and written in batches; what the
console reads back (requests per minute, recent requests and what looks unusual).

`ActivityLog.record` is on the path of every authenticated request (one after-request hook,
`bridge.console.views.record_request`): it appends a tuple to a bounded per-process buffer and
returns; it never touches the database. A background thread (started on first use in each
process, so a forked gunicorn worker gets its own) writes the buffer every `activity_flush_s`
(1 s): one multi-row INSERT, and one UPDATE of each connection's `last_used_at`.

What may be lost, by design: on a crash (SIGKILL, OOM) the records of that process's last
flush interval, at most a second of activity; a graceful stop flushes at exit. When the buffer
is full (`activity_buffer` records: the database has been unreachable for a while), new records
are dropped and counted in the log. Nothing here is a credential: the route is the URL rule,
the path has no query string and an inbound URL's token is replaced by `<redacted>`.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import statistics
import threading
import weakref
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Engine, Table, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from bridge.infra.models import ApiRequest, Connection
from bridge.infra.storage import purge_before

log = logging.getLogger(__name__)
INBOUND_TOKEN = re.compile(r"^/+in/[^/?]+")  # the same redaction as gunicorn.conf.py's log
_REQUESTS = cast(Table, ApiRequest.__table__)
_CONNECTIONS = cast(Table, Connection.__table__)


class Record(NamedTuple):
    """One request, as the hook hands it over (plain values: cheap to build and to keep)."""

    connection_id: str
    at: datetime
    method: str
    route: str
    path: str
    status: int
    address: str


def redact(path: str) -> str:
    """The path as stored: an inbound URL's token hidden, clipped to the column."""
    return INBOUND_TOKEN.sub("/in/<redacted>", path)[:300]


class ActivityLog:
    """The per-process buffer and its writer thread."""

    def __init__(self, engine: Engine, flush_s: float = 1.0, capacity: int = 50_000) -> None:
        self._engine = engine
        self._flush_s = flush_s
        self._capacity = capacity
        self._buffer: deque[Record] = deque()
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.dropped = 0

    def record(self, item: Record) -> None:
        """Keep `item` for the next batch (dropped and counted when the buffer is full)."""
        if self._pid != os.getpid():
            self._start()
        if len(self._buffer) >= self._capacity:
            self.dropped += 1
            return
        self._buffer.append(item)

    def _start(self) -> None:
        with self._start_lock:
            if self._pid == os.getpid():
                return
            # After a fork the parent's records and thread are not ours: start afresh.
            self._buffer.clear()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="activity-log", daemon=True
            )
            self._pid = os.getpid()
            self._thread.start()
            atexit.register(_close_at_exit, weakref.ref(self))

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._flush_s):
            self.flush()

    def flush(self) -> int:
        """Write what the buffer holds now; returns how many records. Never raises: a failed
        write is logged and its records go back to the buffer (within its capacity)."""
        with self._flush_lock:
            batch: list[Record] = []
            while self._buffer and len(batch) < self._capacity:
                batch.append(self._buffer.popleft())
            if self.dropped:
                log.warning("activity.dropped records=%d (buffer full)", self.dropped)
                self.dropped = 0
            if not batch:
                return 0
            try:
                _write(self._engine, batch)
            except Exception as exc:
                log.warning("activity.write_failed records=%d error=%s", len(batch),
                            type(exc).__name__)  # fmt: skip
                room = max(0, self._capacity - len(self._buffer))
                self._buffer.extendleft(reversed(batch[:room]))
                self.dropped += len(batch) - min(room, len(batch))
                return 0
            return len(batch)

    def close(self) -> None:
        """Stop the writer and write what is left (a graceful stop loses nothing)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.flush()


def _close_at_exit(ref: weakref.ref[ActivityLog]) -> None:
    found = ref()
    if found is not None:
        found.close()


def _write(engine: Engine, batch: list[Record]) -> None:
    last_used: dict[str, datetime] = {}
    for item in batch:
        if item.connection_id not in last_used or item.at > last_used[item.connection_id]:
            last_used[item.connection_id] = item.at
    rows = [{**item._asdict(), "minute": int(item.at.timestamp()) // 60} for item in batch]
    touch = (
        update(_CONNECTIONS)
        .where(_CONNECTIONS.c.id == bindparam("b_id"))
        .where(or_(_CONNECTIONS.c.last_used_at.is_(None),
                   _CONNECTIONS.c.last_used_at < bindparam("b_at")))
        # Keep updated_at as it is: a request is not a change to the connection.
        .values(last_used_at=bindparam("b_at"), updated_at=_CONNECTIONS.c.updated_at)
    )  # fmt: skip
    with engine.begin() as db:
        db.execute(insert(_REQUESTS), rows)
        db.execute(touch, [{"b_id": key, "b_at": at} for key, at in last_used.items()])


def purge_old(engine: Engine, retention_days: float) -> int:
    """Delete records older than the retention; returns how many (run by housekeeping)."""
    before = datetime.now(UTC) - timedelta(days=retention_days)
    return purge_before(engine, _REQUESTS.c.at, before)


# What the console reads back.

UNUSUAL_FACTOR = 4  # a minute this many times the typical one is unusual volume...
UNUSUAL_FLOOR = 20  # ...when it is also at least this many requests
NEW_ADDRESS_HOURS = 24
FIRST_USE_GRACE = timedelta(minutes=5)  # the addresses of a connection's first minutes are known


@dataclass(frozen=True)
class Minute:
    start: datetime
    requests: int
    throttled: int
    unusual: bool


@dataclass(frozen=True)
class Usage:
    """Requests per minute over the chart's window, against the plan limit."""

    minutes: list[Minute]
    limit: int
    typical: float
    total: int
    throttled: int

    @property
    def peak(self) -> Minute | None:
        return max(self.minutes, key=lambda m: m.requests) if self.total else None

    @property
    def unusual(self) -> list[Minute]:
        return [minute for minute in self.minutes if minute.unusual]


def usage(session: Session, connection_id: str, limit: int, hours: int, now: datetime) -> Usage:
    """Per-minute requests and 429s over the last `hours`; a minute is unusual when it is
    several times the connection's typical minute over the last day, or reaches the limit."""
    last = int(now.timestamp()) // 60
    day_start = last - 24 * 60 + 1
    counts = {
        minute: (total, throttled)
        for minute, total, throttled in session.execute(
            select(
                _REQUESTS.c.minute,
                func.count(),
                func.count().filter(_REQUESTS.c.status == 429),
            )
            .where(_REQUESTS.c.connection_id == connection_id)
            .where(_REQUESTS.c.minute >= day_start)
            .group_by(_REQUESTS.c.minute)
        )
    }
    active = [total for total, _ in counts.values()]
    typical = float(statistics.median(active)) if active else 0.0
    threshold = max(UNUSUAL_FACTOR * typical, UNUSUAL_FLOOR)
    minutes = []
    for minute in range(last - hours * 60 + 1, last + 1):
        total, throttled = counts.get(minute, (0, 0))
        minutes.append(Minute(
            datetime.fromtimestamp(minute * 60, UTC), total, throttled,
            unusual=total > threshold or total >= limit,
        ))  # fmt: skip
    return Usage(
        minutes, limit, typical, sum(m.requests for m in minutes),
        sum(m.throttled for m in minutes),
    )  # fmt: skip


@dataclass(frozen=True)
class Seen:
    """A recent request and what about it deserves a look."""

    at: datetime
    method: str
    path: str
    status: int
    address: str
    new_address: bool
    unusual_error: bool


def recent(session: Session, connection_id: str, now: datetime, limit: int = 50) -> list[Seen]:
    """The newest requests, each flagged when it came from an address first seen in the last
    day (after the connection's first minutes), or failed on an operation the connection has
    never used successfully (within the retention)."""
    rows = session.execute(
        select(_REQUESTS.c.at, _REQUESTS.c.method, _REQUESTS.c.route, _REQUESTS.c.path,
               _REQUESTS.c.status, _REQUESTS.c.address)
        .where(_REQUESTS.c.connection_id == connection_id)
        .order_by(_REQUESTS.c.id.desc())
        .limit(limit)
    ).all()  # fmt: skip
    if not rows:
        return []
    first_seen = dict(
        session.execute(
            select(_REQUESTS.c.address, func.min(_REQUESTS.c.at))
            .where(_REQUESTS.c.connection_id == connection_id)
            .where(_REQUESTS.c.address.in_({row.address for row in rows}))
            .group_by(_REQUESTS.c.address)
        ).all()
    )
    started = session.scalar(
        select(func.min(_REQUESTS.c.at)).where(_REQUESTS.c.connection_id == connection_id)
    )
    used = _operations_used(session, connection_id)
    recently = now - timedelta(hours=NEW_ADDRESS_HOURS)
    return [
        Seen(
            at=_aware(row.at), method=row.method, path=row.path, status=row.status,
            address=row.address,
            new_address=_is_new(first_seen.get(row.address), started, recently),
            unusual_error=row.status >= 400 and row.status != 429
            and bool(used) and (row.method, row.route) not in used,
        )
        for row in rows
    ]  # fmt: skip


def _operations_used(session: Session, connection_id: str) -> set[tuple[str, str]]:
    """The operations (method, route) that have answered this connection successfully."""
    found = session.execute(
        select(_REQUESTS.c.method, _REQUESTS.c.route)
        .where(_REQUESTS.c.connection_id == connection_id)
        .where(_REQUESTS.c.status < 400)
        .distinct()
    )
    return {(method, route) for method, route in found}


def _is_new(first: Any, started: Any, recently: datetime) -> bool:
    if first is None or started is None:
        return False
    first, started = _aware(first), _aware(started)
    return bool(first >= recently and first > started + FIRST_USE_GRACE)


def _aware(value: datetime) -> datetime:
    """Core SELECTs on SQLite give naive UTC (the ORM type adds the zone; Core aggregates don't)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
