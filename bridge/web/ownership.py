"""The current connection's own rows (sources, hook subscriptions): one place for the rule that a
deleted row, or another connection's, does not exist for the caller.

Another tenant's id answers the same 404 as a missing one, so ids cannot be probed.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select

from bridge.infra.models import Source, Subscription
from bridge.infra.storage import get_session
from bridge.web.auth import current_connection
from bridge.web.errors import APIError

Owned = TypeVar("Owned", Source, Subscription)


def owned(model: type[Owned], row_id: str, noun: str) -> Owned:
    """The caller's live row of `model` with this id; 404 naming `noun` otherwise."""
    row = get_session().get(model, row_id)
    if row is None or row.connection_id != current_connection().id or row.state == "deleted":
        raise APIError(404, "not_found", f"No such {noun} for this connection")
    return row


def owned_rows(model: type[Owned]) -> list[Owned]:
    """The caller's live rows of `model`, oldest first."""
    return list(
        get_session().scalars(
            select(model)
            .where(model.connection_id == current_connection().id)
            .where(model.state != "deleted")
            .order_by(model.created_at)
        )
    )
