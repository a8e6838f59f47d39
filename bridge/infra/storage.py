"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL through DATABASE_URL.

Web requests get one session per request (`bridge.web.context.get_session`, closed on
teardown); background code and the CLI use `session_scope(sessions)`. Schema changes go through
Alembic (`migrations/`), applied by `flask --app bridge migrate`, never by `create_all` in
production code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bridge.infra.errors import StorageUnavailable

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


IDLE_PING_S = 2.0  # a pooled connection unused for longer is pinged before it is handed out


def make_engine(url: str) -> Engine:
    """Create an engine tuned for the dialect (WAL and busy timeout on SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_size=10, max_overflow=20)
        event.listen(engine, "checkout", _ping_if_idle)
        event.listen(engine, "checkin", _mark_used)
        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    event.listen(engine, "connect", sqlite_pragmas)
    return engine


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Ping a pooled connection before handing it out, unless it was in use a moment ago.

    SQLAlchemy's `pool_pre_ping` pings on every checkout: one more round trip for each request,
    the largest single cost of a webhook's acknowledgement on PostgreSQL. A connection returned
    within `IDLE_PING_S` was working then; one idle for longer (say, across a database restart)
    is pinged, and a dead one is replaced before anyone uses it (the pool retries on
    `DisconnectionError`).
    """
    last_used = record.info.get("last_used")
    if last_used is not None and time.monotonic() - last_used < IDLE_PING_S:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
        dbapi_connection.rollback()  # the ping opened a transaction; hand the connection out idle
    except Exception as exc:
        raise DisconnectionError("the pooled connection is gone") from exc


def _mark_used(_dbapi_connection: Any, record: Any) -> None:
    record.info["last_used"] = time.monotonic()


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """A Core connection for the hot paths: each statement is its own transaction on PostgreSQL
    (no BEGIN and COMMIT round trips around a single read or a single-statement write); on SQLite
    (in-process, where a transaction costs no round trip) the caller commits as usual."""
    with engine.connect() as db:
        if db.dialect.name == "postgresql":
            db = db.execution_options(isolation_level="AUTOCOMMIT")
        yield db


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration to the engine's database (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Yield a session that commits on success and rolls back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


PURGE_BATCH = 5000
PURGE_BATCHES = 20  # per call: a larger backlog is caught up by the next housekeeping runs


def purge_before(
    engine: Engine,
    column: Column[Any],
    before: datetime,
    *,
    only: ColumnElement[bool] | None = None,
    batch: int = PURGE_BATCH,
) -> int:
    """Delete the rows of `column`'s table whose `column` is before `before` (NULL never is)
    and that match `only`, `batch` rows per statement so neither database holds a long write
    lock, at most `PURGE_BATCHES` statements per call; returns how many. `column` should be
    indexed."""
    table = column.table
    (key,) = table.primary_key.columns
    old = column < before if only is None else and_(column < before, only)
    purged = 0
    with engine.connect() as db:
        for _ in range(PURGE_BATCHES):
            oldest = select(key).where(old).order_by(key).limit(batch)
            deleted = db.execute(delete(table).where(key.in_(oldest.scalar_subquery())))
            db.commit()
            purged += deleted.rowcount
            if deleted.rowcount < batch:
                break
    return purged


def ping(engine: Engine) -> None:
    """Run a trivial query; raises when the database is unreachable."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def unavailable(exc: BaseException) -> StorageUnavailable | None:
    """The 503 for a database that cut or refused the connection (a restart, a failover,
    `pg_terminate_backend` on a pooled connection the idle-ping skipped), else None."""
    if isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return StorageUnavailable()
    return None
