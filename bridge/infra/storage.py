"""Database engine and sessions: SQLite (WAL) by default, PostgreSQL through DATABASE_URL.

Web requests get one session per request (`bridge.web.context.get_session`, closed on
teardown); background code and the CLI use `session_scope(sessions)`. Schema changes go through
Alembic (`migrations/`), applied by `flask --app bridge migrate`, never by `create_all` in
production code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def make_engine(url: str) -> Engine:
    """Create an engine tuned for the dialect (WAL and busy timeout on SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
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
