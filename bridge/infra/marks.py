"""Durable marks: a named value in the SQL database, for the few facts Redis may lose.

The rate limiter keeps its budgets in Redis; whether Redis has *ever* held them (and so whether
an empty Redis means "first start" or "lost its data") must live somewhere Redis cannot wipe.
"""

from __future__ import annotations

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from bridge.infra.models import DurableMark, utcnow


def read_mark(engine: Engine, name: str) -> str | None:
    """Return the mark's value, or None when it was never set."""
    with engine.connect() as db:
        return db.scalar(select(DurableMark.value).where(DurableMark.name == name))


def write_mark(engine: Engine, name: str, value: str) -> None:
    """Set the mark (insert or overwrite); concurrent writers leave one of their values."""
    overwrite = (
        update(DurableMark).where(DurableMark.name == name).values(value=value, updated_at=utcnow())
    )
    with engine.begin() as db:
        if db.execute(overwrite).rowcount:
            return
    try:
        with engine.begin() as db:
            db.execute(insert(DurableMark).values(name=name, value=value, updated_at=utcnow()))
    except IntegrityError:  # another process inserted it first: overwrite, as asked
        with engine.begin() as db:
            db.execute(overwrite)
