"""Core statements compiled once and run on the driver's own cursor: the hot paths.

Running a cached Core statement through SQLAlchemy still costs ~15-20 µs of Python per call
(cache key, execution context, result object) against ~4 µs for the same statement on the
sqlite3 cursor; an inbound ack runs four. `Prepared` keeps SQLAlchemy's compiled SQL and its
bind processors (so a datetime is stored exactly as the ORM stores it, and compares with it) and
skips the rest.

The statement still runs inside the SQLAlchemy connection's transaction: `run` begins one when
none is open, so the caller's `commit()` commits it (and closing without a commit rolls it
back) exactly as for `Connection.execute`.

`first_row` runs the one-row statements of the hot paths (a request's authentication, an
inbound webhook's source, and on PostgreSQL its one-statement write) on either database. On
PostgreSQL it runs on psycopg's connection, but only one in autocommit (`storage.autocommit`),
so no transaction exists that SQLAlchemy would not know about: SQLAlchemy's execution cost
0.05 ms of CPU of an authentication's 0.19 ms there, and an ack went from 1.06 to 0.87 ms.
A driver error still passes through SQLAlchemy's disconnect handling: a cut connection is
invalidated (the pool replaces it) and raised as SQLAlchemy's `OperationalError`, which the
web layer answers with 503 `storage_unavailable`, as for any other statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

_T = TypeVar("_T", "Prepared", "OnPsycopg")
_DIALECT = sqlite.dialect()  # pysqlite
_PG_DIALECT = pg_psycopg.dialect()  # type: ignore[no-untyped-call]


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


class OnPsycopg:
    """One statement for PostgreSQL: its SQL text (psycopg's named placeholders), bind
    processors and the values it binds itself, run on psycopg's own connection."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=_PG_DIALECT))
        self.sql = compiled.string
        escaped: Mapping[str, str] = compiled.escaped_bind_names or {}
        self._keys = {name: escaped.get(name, name) for name in compiled.binds}
        self._processors = {
            name: bind.type.bind_processor(_PG_DIALECT) for name, bind in compiled.binds.items()
        }
        # what the statement itself binds (`literal(...)`): the caller does not pass these
        self._fixed = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None and bind.value is not None
        }

    def first(self, db: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row, on an autocommit connection (a single statement commits itself).

        Raises:
            sqlalchemy.exc.DBAPIError: what `Connection.execute` would raise (a cut
                connection invalidated first).
        """
        parameters = {
            self._keys.get(name, name): (
                value if (process := self._processors.get(name)) is None else process(value)
            )
            for name, value in {**self._fixed, **values}.items()
        }
        driver = db.connection.driver_connection
        if not getattr(driver, "autocommit", False):
            raise TypeError("OnPsycopg reads run on autocommit connections only")
        try:
            row = driver.execute(self.sql, parameters).fetchone()  # type: ignore[union-attr]
        except db.dialect.loaded_dbapi.Error as exc:
            raise _as_sqlalchemy_error(db, self.sql, exc) from exc
        return None if row is None else tuple(row)


def first_row(
    db: Connection, statement: ClauseElement, values: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """One row of a hot-path read on the driver itself where it can (SQLite always, PostgreSQL
    on an autocommit connection), else through `Connection.execute`.

    Values are the driver's, without SQLAlchemy's result processing: strings and NULLs are the
    same, a datetime is text on SQLite. The hot paths read strings and test timestamps only
    for NULL."""
    name = db.dialect.name
    if name == "sqlite":
        found = _compiled(statement, Prepared).run(db, values).fetchone()
        return None if found is None else tuple(found)
    if name == "postgresql" and db.dialect.driver == "psycopg":
        driver = db.connection.driver_connection
        if getattr(driver, "autocommit", False):
            return _compiled(statement, OnPsycopg).first(db, values)
    row = db.execute(cast(Executable, statement), values).first()
    return None if row is None else tuple(row)


def sqlite_statement(statement: ClauseElement) -> Prepared:
    """`statement` compiled for SQLite's cursor, once per process (a module constant)."""
    return _compiled(statement, Prepared)


_COMPILED: dict[tuple[int, type], tuple[ClauseElement, Any]] = {}


def _compiled(statement: ClauseElement, kind: type[_T]) -> _T:
    """`statement` compiled once per process for `kind` (statements are module constants)."""
    key = (id(statement), kind)
    found = _COMPILED.get(key)
    if found is None or found[0] is not statement:
        found = _COMPILED[key] = (statement, kind(statement))
    return cast(_T, found[1])


def _as_sqlalchemy_error(db: Connection, sql: str, exc: Exception) -> DBAPIError:
    """The driver's error as SQLAlchemy raises it. A cut connection is invalidated first, and
    with it every connection the pool opened before it (SQLAlchemy's own disconnect handling:
    a server that cut one, by a restart, a failover or `pg_terminate_backend`, has cut them
    all), so the pool hands out fresh ones next."""
    dialect = db.dialect
    cut = dialect.is_disconnect(cast(Any, exc), db.connection.dbapi_connection, None)
    if cut:
        db.engine.pool._invalidate(db.connection, exc)  # the one SQLAlchemy calls itself
        db.invalidate(exc)
    return cast(
        DBAPIError,
        DBAPIError.instance(
            sql, None, exc, dialect.loaded_dbapi.Error,
            hide_parameters=True, connection_invalidated=cut, dialect=dialect,
        ),
    )  # fmt: skip
