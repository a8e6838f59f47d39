"""`HotReads`: the per-request read on SQLite's own shared connection, or PostgreSQL's pool.

What it must keep: every read sees the last commit of any process (revocation applies to the
next request), it holds no read snapshot between reads, a failure is SQLAlchemy's error (the
web layer's 503) and the next read reopens, and a forked worker uses a connection of its own.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select, text
from sqlalchemy.exc import OperationalError

from bridge.infra import storage
from bridge.infra.hot_reads import HotReads

METADATA = MetaData()
ITEMS = Table("items", METADATA, Column("id", Integer, primary_key=True), Column("name", String))
BY_ID = select(ITEMS.c.name).where(ITEMS.c.id == bindparam("item_id"))


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "hot.sqlite3"
    engine = storage.make_engine(f"sqlite:///{path}")
    METADATA.create_all(engine)
    engine.dispose()
    return path


def writer(path: Path) -> sqlite3.Connection:
    """Another process's connection, as far as the reader can tell."""
    return sqlite3.connect(path, isolation_level=None)


def test_each_read_sees_the_last_commit_and_holds_no_snapshot(sqlite_file):
    engine = storage.make_engine(f"sqlite:///{sqlite_file}")
    reads = HotReads(engine)
    other = writer(sqlite_file)
    try:
        assert reads.first_row(BY_ID, {"item_id": 1}) is None
        other.execute("INSERT INTO items (id, name) VALUES (1, 'live')")
        assert reads.first_row(BY_ID, {"item_id": 1}) == ("live",)
        other.execute("UPDATE items SET name = 'revoked' WHERE id = 1")
        assert reads.first_row(BY_ID, {"item_id": 1}) == ("revoked",)
        # A snapshot left open by the reader would keep this from copying the whole WAL back.
        busy, _pages, _copied = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
        assert engine.pool.checkedout() == 0  # the pool was not used
    finally:
        other.close()
        reads.close()
        engine.dispose()


def test_a_failed_read_is_sqlalchemys_error_and_the_next_one_reopens(sqlite_file):
    engine = storage.make_engine(f"sqlite:///{sqlite_file}")
    reads = HotReads(engine)
    other = writer(sqlite_file)
    try:
        other.execute("INSERT INTO items (id, name) VALUES (2, 'kept')")
        assert reads.first_row(BY_ID, {"item_id": 2}) == ("kept",)
        other.execute("ALTER TABLE items RENAME TO items_away")
        with pytest.raises(OperationalError):  # what the web layer answers with a 503
            reads.first_row(BY_ID, {"item_id": 2})
        other.execute("ALTER TABLE items_away RENAME TO items")
        assert reads.first_row(BY_ID, {"item_id": 2}) == ("kept",)
    finally:
        other.close()
        reads.close()
        engine.dispose()


def _read_in_child(reads: HotReads, parent_connection: int, answers: multiprocessing.Queue) -> None:
    row = reads.first_row(BY_ID, {"item_id": 3})
    answers.put((row, id(reads._connection) != parent_connection))


def test_a_forked_process_reads_on_a_connection_of_its_own(sqlite_file):
    engine = storage.make_engine(f"sqlite:///{sqlite_file}")
    reads = HotReads(engine)
    try:
        with writer(sqlite_file) as other:
            other.execute("INSERT INTO items (id, name) VALUES (3, 'shared')")
        assert reads.first_row(BY_ID, {"item_id": 3}) == ("shared",)
        fork = multiprocessing.get_context("fork")
        answers = fork.Queue()
        child = fork.Process(target=_read_in_child, args=(reads, id(reads._connection), answers))
        child.start()
        row, own_connection = answers.get(timeout=30)
        child.join(30)
        assert child.exitcode == 0
        assert tuple(row) == ("shared",)
        assert own_connection
        assert reads.first_row(BY_ID, {"item_id": 3}) == ("shared",)  # the parent's still works
    finally:
        reads.close()
        engine.dispose()


def test_on_postgresql_each_read_borrows_a_pooled_connection(pg_url):
    engine = storage.make_engine(pg_url)
    METADATA.create_all(engine)
    reads = HotReads(engine)
    try:
        with engine.begin() as db:
            db.execute(text("INSERT INTO items (id, name) VALUES (4, 'pooled')"))
        assert reads.first_row(BY_ID, {"item_id": 4}) == ("pooled",)
        assert reads.first_row(BY_ID, {"item_id": 5}) is None
        assert engine.pool.checkedout() == 0  # given back after each read
    finally:
        reads.close()
        engine.dispose()
