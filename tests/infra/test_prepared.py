"""`bridge.infra.prepared`: statements run on the sqlite3 cursor keep SQLAlchemy's guarantees.

The inbound ack relies on them: a write is part of the Core connection's transaction (durable
at its commit, gone if the request fails before it), values are stored exactly as SQLAlchemy
stores them (datetimes compare as text on SQLite), and a column SQLAlchemy would have filled from
a Python default is never silently left empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    literal,
    select,
)  # fmt: skip
from sqlalchemy.exc import OperationalError

from bridge.infra import storage
from bridge.infra.models import UTCDateTime
from bridge.infra.prepared import OnPsycopg, Prepared, first_row
from bridge.infra.storage import make_engine

METADATA = MetaData()
ITEMS = Table(
    "items", METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(20), unique=True),
    Column("at", UTCDateTime()),
)  # fmt: skip
WITH_DEFAULT = Table(
    "with_default", METADATA,
    Column("id", Integer, primary_key=True),
    Column("made_at", UTCDateTime(), default=lambda: datetime.now(UTC)),
)  # fmt: skip
AT = datetime(2026, 12, 5, 7, 30, 1, 123456, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/prepared.sqlite3")
    METADATA.create_all(engine)
    yield engine
    engine.dispose()


def add(name: str) -> Prepared:
    return Prepared(
        insert(ITEMS)
        .values(name=bindparam("name"), at=bindparam("at", type_=ITEMS.c.at.type))
        .returning(ITEMS.c.id)
    )


def names(engine: Engine) -> list[str]:
    with engine.connect() as db:
        return list(db.scalars(select(ITEMS.c.name).order_by(ITEMS.c.id)))


def test_a_write_is_durable_at_the_commit_and_gone_without_it(engine: Engine) -> None:
    with engine.connect() as db:
        row = add("kept").run(db, {"name": "kept", "at": AT}).fetchone()
        assert row is not None and row[0] == 1
        db.commit()
    with engine.connect() as db:
        add("lost").run(db, {"name": "lost", "at": AT})
        # the request fails here: the connection closes without a commit
    assert names(engine) == ["kept"]


def test_values_are_stored_as_sqlalchemy_stores_them(engine: Engine) -> None:
    with engine.begin() as db:
        db.execute(insert(ITEMS), {"name": "core", "at": AT})
    with engine.connect() as db:
        add("raw").run(db, {"name": "raw", "at": AT})
        db.commit()
    with engine.connect() as db:
        stored = db.exec_driver_sql("SELECT name, at FROM items ORDER BY id").all()
        read_back = db.scalars(select(ITEMS.c.at)).all()
    assert stored[0][1] == stored[1][1], stored
    assert read_back == [AT, AT]


def test_many_rows_run_in_the_same_transaction(engine: Engine) -> None:
    prepared = add("x")
    with engine.connect() as db:
        prepared.run_many(db, [{"name": "a", "at": AT}, {"name": "b", "at": AT}])
    assert names(engine) == []
    with engine.connect() as db:
        prepared.run_many(db, [{"name": "a", "at": AT}, {"name": "b", "at": AT}])
        db.commit()
    assert names(engine) == ["a", "b"]


def test_a_column_sqlalchemy_would_default_in_python_is_refused() -> None:
    with pytest.raises(ValueError, match="made_at"):
        Prepared(insert(WITH_DEFAULT).values(id=bindparam("id")))


def test_a_missing_parameter_is_an_error_not_a_null(engine: Engine) -> None:
    with engine.connect() as db, pytest.raises(KeyError, match="at"):
        add("x").run(db, {"name": "no time"})


BY_NAME = select(ITEMS.c.name, ITEMS.c.at).where(ITEMS.c.name == bindparam("name"))


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    METADATA.create_all(engine)
    with engine.begin() as db:
        db.execute(insert(ITEMS), {"name": "kept", "at": AT})
    yield engine
    engine.dispose()


def test_first_row_reads_the_same_row_as_sqlalchemy_on_both_databases(
    engine: Engine, pg_engine: Engine
) -> None:
    """On SQLite and on an autocommit PostgreSQL connection the read runs on the driver's
    own cursor; strings and NULLs come back as SQLAlchemy returns them (other values as the
    driver does: a datetime is text on SQLite)."""
    with engine.begin() as db:
        db.execute(insert(ITEMS), {"name": "kept", "at": AT})
    for each in (engine, pg_engine):
        with storage.autocommit(each) as db:
            texts = select(ITEMS.c.name, ITEMS.c.at.is_(None)).where(
                ITEMS.c.name == bindparam("name")
            )
            core = db.execute(texts, {"name": "kept"}).first()
            assert core is not None
            assert first_row(db, texts, {"name": "kept"}) == tuple(core) == ("kept", False)
            assert first_row(db, texts, {"name": "absent"}) is None


def test_a_postgres_connection_in_a_transaction_reads_through_sqlalchemy(
    pg_engine: Engine,
) -> None:
    """Outside autocommit the driver would open a transaction SQLAlchemy does not know of, so
    the read goes through `Connection.execute`, and the caller's transaction stays its own."""
    with pg_engine.connect() as db:
        db.execute(insert(ITEMS), {"name": "uncommitted", "at": AT})
        assert first_row(db, BY_NAME, {"name": "uncommitted"}) == ("uncommitted", AT)
        db.rollback()
        assert first_row(db, BY_NAME, {"name": "uncommitted"}) is None
    with pytest.raises(TypeError, match="autocommit"), pg_engine.connect() as db:
        OnPsycopg(BY_NAME).first(db, {"name": "kept"})


def test_a_cut_postgres_connection_is_sqlalchemys_error_and_is_replaced(
    pg_engine: Engine,
) -> None:
    """A connection the server ended raises SQLAlchemy's OperationalError (the web layer's
    503) and is invalidated, so the next read gets a fresh connection."""
    with storage.autocommit(pg_engine) as db:
        pid = first_row(db, select(func.pg_backend_pid()), {})
    admin = make_engine(str(pg_engine.url.render_as_string(hide_password=False)))
    try:
        with admin.begin() as other:
            other.execute(select(func.pg_terminate_backend(bindparam("pid"))), {"pid": pid[0]})
    finally:
        admin.dispose()
    with storage.autocommit(pg_engine) as db:
        with pytest.raises(OperationalError) as raised:
            first_row(db, BY_NAME, {"name": "kept"})
        assert raised.value.connection_invalidated
        assert db.invalidated  # the pool will not hand this connection out again
    with storage.autocommit(pg_engine) as db:
        assert first_row(db, BY_NAME, {"name": "kept"}) == ("kept", AT)


def test_a_cut_postgres_connection_retires_the_pools_older_ones(pg_engine: Engine) -> None:
    """A server that cut one pooled connection (a restart, a failover) has cut the others: the
    first read that meets one invalidates them all, so the next two reads both get fresh
    connections instead of the second meeting another dead one."""
    with storage.autocommit(pg_engine) as first, storage.autocommit(pg_engine) as second:
        pids = [first_row(db, select(func.pg_backend_pid()), {})[0] for db in (first, second)]
    admin = make_engine(str(pg_engine.url.render_as_string(hide_password=False)))
    try:
        with admin.begin() as other:
            for pid in pids:
                other.execute(select(func.pg_terminate_backend(bindparam("pid"))), {"pid": pid})
    finally:
        admin.dispose()
    with pytest.raises(OperationalError), storage.autocommit(pg_engine) as db:
        first_row(db, BY_NAME, {"name": "kept"})
    with storage.autocommit(pg_engine) as first, storage.autocommit(pg_engine) as second:
        fresh = [first_row(db, select(func.pg_backend_pid()), {})[0] for db in (first, second)]
    assert not set(fresh) & set(pids)


def test_a_postgres_write_binds_its_literals_and_converts_its_values(pg_engine: Engine) -> None:
    """What the statement binds itself (`literal`) is sent with the caller's values, and each
    value goes through its type's bind processing, as `Connection.execute` would do."""
    write = (
        insert(ITEMS)
        .from_select(
            ["name", "at"],
            select(literal("from-literal"), bindparam("at", type_=ITEMS.c.at.type)),
        )
        .returning(ITEMS.c.name, ITEMS.c.at)
    )
    with storage.autocommit(pg_engine) as db:
        assert first_row(db, write, {"at": AT}) == ("from-literal", AT)
    with pg_engine.connect() as db:  # committed by itself: autocommit
        assert db.execute(BY_NAME, {"name": "from-literal"}).first() == ("from-literal", AT)
