"""Core statements compiled once and run on SQLite's own cursor: the inbound ack's hot path.

Running a cached Core statement through SQLAlchemy still costs ~15-20 µs of Python per call
(cache key, execution context, result object) against ~4 µs for the same statement on the
sqlite3 cursor; an inbound ack runs four. `Prepared` keeps SQLAlchemy's compiled SQL and its
bind processors (so a datetime is stored exactly as the ORM stores it, and compares with it) and
skips the rest.

The statement still runs inside the SQLAlchemy connection's transaction: `run` begins one when
none is open, so the caller's `commit()` commits it (and closing without a commit rolls it
back) exactly as for `Connection.execute`. SQLite only: on PostgreSQL a statement is a network
round trip, which costs far more than this overhead, and the driver's errors there must pass
through SQLAlchemy's disconnect handling.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = sqlite.dialect()  # pysqlite


class Prepared:
    """One statement for SQLite: its SQL text, its parameters' order and their bind processors."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
        if compiled.positiontup is None:
            raise ValueError("expected positional parameters (the qmark style)")
        if compiled.insert_prefetch or compiled.update_prefetch:
            # SQLAlchemy would compute these columns' Python defaults per call; here nobody would
            columns = [c.name for c in (*compiled.insert_prefetch, *compiled.update_prefetch)]
            raise ValueError(f"give these columns a value: {', '.join(columns)}")
        self.sql = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup)
        self._processors: tuple[Callable[[Any], Any] | None, ...] = tuple(
            compiled.binds[name].type.bind_processor(_DIALECT) for name in self._names
        )

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters for `values` (every named parameter must be given)."""
        return tuple(
            values[name] if process is None else process(values[name])
            for name, process in zip(self._names, self._processors, strict=True)
        )

    def run(self, db: Connection, values: Mapping[str, Any]) -> sqlite3.Cursor:
        """Execute once in `db`'s transaction (begun if none is open); the caller commits."""
        return _cursor(db).execute(self.sql, self.parameters(values))

    def run_many(self, db: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per row in `db`'s transaction (begun if none is open)."""
        _cursor(db).executemany(self.sql, [self.parameters(row) for row in rows])


def _cursor(db: Connection) -> sqlite3.Cursor:
    if not db.in_transaction():
        db.begin()
    driver = db.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection):
        raise TypeError("Prepared statements run on SQLite only")
    return driver.cursor()
