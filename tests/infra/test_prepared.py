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
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, bindparam, insert, select

from bridge.infra.models import UTCDateTime
from bridge.infra.prepared import Prepared
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
