"""A connection's own rows (sources, hook subscriptions): one place for the rule that a deleted
row, or another connection's, does not exist for the caller.

Another tenant's id answers the same 404 as a missing one, so ids cannot be probed.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.infra.errors import NotFound
from bridge.infra.models import Source, Subscription

Owned = TypeVar("Owned", Source, Subscription)


def owned(
    session: Session, model: type[Owned], row_id: str, connection_id: str, noun: str
) -> Owned:
    """The connection's live row of `model` with this id.

    Raises:
        NotFound: naming `noun`, when it is missing, deleted or another connection's.
    """
    row = session.get(model, row_id)
    if row is None or row.connection_id != connection_id or row.state == "deleted":
        raise NotFound(f"No such {noun} for this connection")
    return row


def owned_rows(session: Session, model: type[Owned], connection_id: str) -> list[Owned]:
    """The connection's live rows of `model`, oldest first."""
    return list(
        session.scalars(
            select(model)
            .where(model.connection_id == connection_id)
            .where(model.state != "deleted")
            .order_by(model.created_at)
        )
    )
