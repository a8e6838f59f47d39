"""The SQLite rate budget: SQLite's own write lock, taken without blocking, and a count of the
window that does not grow with it.

pyrate-limiter's SQLite bucket counts a key's window, then inserts, so the processes sharing the
file must take turns around that pair. The library guards it with a `filelock.FileLock` on a
side file. That lock cost ~0.1 ms per call on this machine (its acquire and release are a
dozen Python calls with fork tracking, plus an open and an flock), half of the whole budget
check on a quiet key.

SQLite already has a lock that gives exactly this exclusion: `BEGIN IMMEDIATE` takes the
database's write lock, which one connection at a time may hold, across processes, and the
commit (or rollback) releases it. The busy timeout is set to zero so a busy database answers
at once instead of SQLite sleeping in C: under gevent that sleep would stop every greenlet of
the process. The lock is retried from Python with `time.sleep`, which gevent turns into a
yield, every SQLITE_LOCK_POLL_S.

The library counts a window with `COUNT(*) ... WHERE item_timestamp >= start`, which walks
every row of the window in the timestamp index: ~9 µs per 1,000 calls admitted in the last
62 s. A 60/min plan never notices; a 10,000/min plan pays tenths of a millisecond per call,
inside the write lock every process waits on (0.52 ms at 62,000 rows on this machine).
`WindowLogBucket` counts the same rows with two index lookups instead (2.7 µs at any size):
the rows are appended under the write lock with the clock read there, so their rowids and
timestamps rise together, and only rows older than the window are ever deleted (the leak),
so the window's rows are the rowids from its first row to the last.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from types import TracebackType
from typing import Any

from pyrate_limiter import RateItem, SQLiteBucket
from pyrate_limiter.abstracts.algorithm import ADMITTED, SlidingWindowLog

SQLITE_LOCK_POLL_S = 0.001  # how often a process retries the budget database's write lock


class SqliteWriteLock:
    """A reentrant lock for one SQLite connection: a thread lock within the process, the
    database's write lock (`BEGIN IMMEDIATE`) across processes.

    What the bucket does inside is its transaction: `put` commits what it admits; anything
    left open on the way out (a refused call, a read) is rolled back, which releases the
    write lock.
    """

    def __init__(self, conn: sqlite3.Connection, poll_s: float = SQLITE_LOCK_POLL_S) -> None:
        conn.execute("PRAGMA busy_timeout=0")
        self._conn = conn
        self._poll_s = poll_s
        self._threads = threading.RLock()
        self._depth = 0

    @property
    def poll_interval(self) -> float:
        return self._poll_s

    def __enter__(self) -> SqliteWriteLock:
        self._threads.acquire()
        try:
            if self._depth == 0:
                self._begin()
        except BaseException:
            self._threads.release()
            raise
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._conn.in_transaction:
                self._conn.rollback()
        finally:
            self._threads.release()

    def _begin(self) -> None:
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
            time.sleep(self._poll_s)


class WindowLogBucket(SQLiteBucket):
    """pyrate-limiter's SQLite sliding-window log, counted in constant time (see the module's
    docstring): the window's size is the last rowid minus the rowid of its first row, plus one.
    """

    def put(self, item: RateItem) -> bool:
        """Admit `item` or refuse it, atomically across threads and processes.

        An admission is one statement (count and insert) and the commit. A refusal goes on to
        the library's own `put`, in the same transaction, for its retry-after.
        """
        with self.lock:
            # Read under the write lock: each row's timestamp is then at least its
            # predecessor's (one clock for every process of the machine), which the count needs.
            item.timestamp = time.time_ns() // 1_000_000  # the clock of SQLiteBucket.now
            if self._admitted_at_once(item):
                self.conn.commit()
                self._record(item, ADMITTED)
                return True
            return bool(super().put(item))

    def _admitted_at_once(self, item: RateItem) -> bool:
        """Insert the item if its window has room, in one statement (the bridge's buckets
        have one rate; anything else takes the library's path)."""
        if (
            item.weight != 1
            or len(self.rates) != 1
            or type(self._algorithm) is not SlidingWindowLog
        ):
            return False
        rate = self.rates[0]
        start = self._algorithm.window_start(rate, item.timestamp)
        cursor = self.conn.execute(self._admit_sql, (item.name, item.timestamp, start, rate.limit))
        return cursor.rowcount == 1

    @functools.cached_property
    def _admit_sql(self) -> str:
        table = self.table  # zwb_<key fingerprint>: hex digits the bridge made, never input
        return (
            f"INSERT INTO '{table}' (name, item_timestamp) SELECT ?, ? WHERE "
            f"{_window_count(table, '?')} < ?"
        )

    def _build_full_count_query(self, current_timestamp: int) -> tuple[str, dict[str, Any]]:
        parameters: dict[str, Any] = {}
        counts = []
        table = self.table  # zwb_<key fingerprint>: hex digits the bridge made, never input
        for index, rate in enumerate(self.rates):
            parameters[f"interval{index}"] = rate.interval
            parameters[f"start{index}"] = self._algorithm.window_start(rate, current_timestamp)
            counts.append(
                f"SELECT :interval{index} AS interval, {_window_count(table, f':start{index}')}"
            )
        return " UNION ALL ".join(counts), parameters


def _window_count(table: str, start: str) -> str:
    """SQL for the number of rows of `table` stamped at or after `start` (a placeholder):
    the last rowid minus the window's first, plus one; 0 for an empty window."""
    return (
        f"COALESCE((SELECT MAX(rowid) FROM '{table}') - (SELECT rowid FROM '{table}' "  # noqa: S608
        f"WHERE item_timestamp >= {start} ORDER BY item_timestamp, rowid LIMIT 1) + 1, 0)"
    )
