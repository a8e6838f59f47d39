"""A connection's sync marker (`connections.sync_due_at`): every read and write of it.

The marker says a sync task is scheduled or running for the connection, so a burst of webhooks
schedules one task, never one each:

- `claim` (and the same condition inside the webhook's one-statement write, `claim_update`)
  sets it when it is free: never set, or older than the stale limit. One caller wins.
- A running task `touch`es it at every batch, so the sweep can tell a live task from one a
  killed worker lost (a marker older than BRIDGE_SYNC_STALE_AFTER is taken over).
- `reschedule` moves it to when the task comes back; `release` clears it when nothing is due.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Connection as DBConnection
from sqlalchemy import Table, Update, bindparam, update
from sqlalchemy.orm import Session

from bridge.infra.models import Connection
from bridge.runtime import Runtime

STALE_MARKER = timedelta(minutes=2)

# Built once: claims run for every accepted webhook, and building the statement per call cost
# more than running it.
_CONNECTIONS = cast(Table, Connection.__table__)
MARKER_FREE = _CONNECTIONS.c.sync_due_at.is_(None) | (
    _CONNECTIONS.c.sync_due_at < bindparam("stale_before")
)


def claim_update(id_param: str) -> Update:
    """The claim as a statement: set the marker to `:due_at` where it is free (`:stale_before`),
    for the connection whose id is bound to `id_param`. `bridge.sync.store` runs it inside its
    single-statement write."""
    return (
        update(_CONNECTIONS)
        .where(_CONNECTIONS.c.id == bindparam(id_param), MARKER_FREE)
        .values(sync_due_at=bindparam("due_at"))
    )


_CLAIM = claim_update("claimed_id")


def window(delay_s: float, stale_after: timedelta = STALE_MARKER) -> dict[str, datetime]:
    """The parameters of `MARKER_FREE` and of the marker a claim sets."""
    now = datetime.now(UTC)
    return {"stale_before": now - stale_after, "due_at": now + timedelta(seconds=delay_s)}


def claim(
    db: Session | DBConnection,
    connection_id: str,
    delay_s: float,
    stale_after: timedelta = STALE_MARKER,
) -> bool:
    """Mark a sync task as scheduled in `delay_s`; True only for the one caller that did.

    A marker older than `stale_after` belongs to a task a killed worker lost, and may be
    claimed again. The caller commits, then schedules the task.
    """
    return claim_in_window(db, connection_id, window(delay_s, stale_after))


def claim_in_window(
    db: Session | DBConnection, connection_id: str, parameters: dict[str, datetime]
) -> bool:
    """`claim` with the window already computed (`window`)."""
    connection = db.connection() if isinstance(db, Session) else db
    claimed = connection.execute(_CLAIM, {"claimed_id": connection_id, **parameters}).rowcount
    return bool(claimed)


def touch(runtime: Runtime, connection_id: str) -> None:
    """Show the sweep this connection's task is alive (a batch is starting now)."""
    _set(runtime, connection_id, datetime.now(UTC))


def reschedule(runtime: Runtime, connection_id: str, delay_s: float) -> None:
    """The task comes back in `delay_s`: the marker says so, and stays taken until then."""
    _set(runtime, connection_id, datetime.now(UTC) + timedelta(seconds=delay_s))


def release(runtime: Runtime, connection_id: str) -> None:
    """Nothing is due: the next webhook or the sweep may claim the marker."""
    _set(runtime, connection_id, None)


def _set(runtime: Runtime, connection_id: str, value: datetime | None) -> None:
    with runtime.sessions() as session:
        session.execute(
            update(Connection).where(Connection.id == connection_id).values(sync_due_at=value)
        )
        session.commit()
