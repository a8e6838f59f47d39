"""The one-row read every authenticated request makes, at the cost of the read itself.

Taking a pooled SQLAlchemy connection for a single read cost more than the read: on SQLite
~20 µs of Python (the pool's queue and its condition variable, the `Connection` object, the
reset on return) around a ~4 µs statement, and about three times that inside a busy request.

On SQLite, `HotReads` keeps one connection of the process's own, in autocommit, for these
reads. A read in WAL mode takes no lock a writer waits for, never waits on a network, and is
a couple of C calls, so the process's greenlets and threads share the connection under a
lock without queueing behind each other. Each read's cursor is closed before the lock is
released, so the connection holds no read snapshot between requests (an open one would keep
the WAL from being checkpointed) and every read sees the last commit of any process:
revocation still applies to the very next request. A forked process opens its own.

On PostgreSQL a read is a network round trip, which one shared connection would serialise:
there each read takes a pooled connection in autocommit and runs on the driver
(`storage.autocommit`, `prepared.first_row`), as before. A read that meets a connection the
server cut (a restart, a failover) is made once more, on a fresh one.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement

from bridge.infra import prepared, storage


class HotReads:
    """One-row reads of the hot paths, on the cheapest connection the database allows."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        database = engine.url.database
        on_file = engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
        self._path = database if on_file else None
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0

    def first_row(
        self, statement: ClauseElement, values: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """The statement's first row (driver values: see `prepared.first_row`).

        Raises:
            sqlalchemy.exc.DBAPIError: the database failed, as SQLAlchemy raises it (the web
                layer answers 503; on PostgreSQL, after one more try if the connection was
                cut); on SQLite the connection is dropped and reopened next time.
        """
        if self._path is None:
            try:
                return self._pooled_read(statement, values)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # A connection the server cut while it sat in the pool (a restart, a failover):
                # the pool has dropped every connection as old as it, and a read is safe to
                # make again, so the request does not pay for it with a 503.
                return self._pooled_read(statement, values)
        compiled = prepared.sqlite_statement(statement)
        parameters = compiled.parameters(values)
        with self._lock:
            try:
                cursor = self._open().execute(compiled.sql, parameters)
                try:
                    row = cursor.fetchone()
                finally:
                    cursor.close()  # ends the statement, and with it the read snapshot
            except sqlite3.Error as exc:
                self._discard()
                raise DBAPIError.instance(compiled.sql, parameters, exc, sqlite3.Error) from exc
        return None if row is None else tuple(row)

    def _pooled_read(
        self, statement: ClauseElement, values: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        with storage.autocommit(self._engine) as db:
            return prepared.first_row(db, statement, values)

    def _open(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != os.getpid():
            assert self._path is not None
            connection = sqlite3.connect(self._path, isolation_level=None,
                                         check_same_thread=False, timeout=30)  # fmt: skip
            storage.sqlite_pragmas(connection, None)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and self._pid == os.getpid():
            connection.close()

    def close(self) -> None:
        with self._lock:
            self._discard()
