"""The SQLite rate budget's cross-process lock: SQLite's own write lock, taken without blocking.

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
"""

from __future__ import annotations

import sqlite3
import threading
import time
from types import TracebackType

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
