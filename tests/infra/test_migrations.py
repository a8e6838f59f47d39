"""Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bridge.infra.models import Base
from bridge.infra.storage import make_engine, migrate


def schema_drift(url: str) -> list:
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_sqlite_schema_matches_models(tmp_path):
    """After `migrate`, autogenerate finds nothing to change on SQLite."""
    assert schema_drift(f"sqlite:///{tmp_path / 'm.sqlite3'}") == []


def test_postgres_schema_matches_models(pg_url):
    """After `migrate`, autogenerate finds nothing to change on PostgreSQL."""
    assert schema_drift(pg_url) == []


def test_migrate_twice_is_harmless(tmp_path):
    """Running the migrations again (every `make run`, every release) changes nothing."""
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    assert schema_drift(url) == []
    assert schema_drift(url) == []
