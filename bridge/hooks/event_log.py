"""The per-connection event log: append detected events once, fan them out, read them back.

Appending takes the next numbers of the connection's own counter (an UPDATE on its row, which
serialises concurrent appenders of one connection), inserts only object ids not yet logged, and
creates a delivery for every active subscription owed the event, all in one transaction: an
event is never logged without its deliveries, or delivered without being logged.

A hook is owed what happens after it subscribed (`owed`), not whatever happens to be detected
after: detection can lag the upstream by far more than an interval (a watch left unpolled while
its agent had no hook keeps its old cursor; a poll may be reading when a hook subscribes; a
ZappWay outage or a key on hold leaves a backlog), and a Zap just turned on must not be sent
that past, while the hooks already there get all of it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bridge.infra.models import Connection, Delivery, Event, Subscription

log = logging.getLogger(__name__)

# How far ZappWay's clock (an event's `occurred_at`) may run behind ours (a hook's `created_at`)
# before an event that happened just after a subscribe is taken for one from before it. Erring
# this way sends a new hook an event from up to this long before it subscribed, never loses one
# from after.
CLOCK_TOLERANCE = timedelta(seconds=5)


@dataclass(frozen=True)
class NewEvent:
    object_id: str
    occurred_at: datetime
    payload: dict[str, Any]


def append(
    session: Session,
    connection_id: str,
    event_type: str,
    agent_id: str,
    items: Sequence[NewEvent],
    seeded: bool = False,
) -> list[int]:
    """Log the items not logged yet and fan them out; returns the new deliveries' ids.

    `seeded` items (a new watch's backfill of past conversations) are logged for polling but
    never pushed to hooks. The caller commits. Items come oldest first, so seq follows time.
    """
    ids = [item.object_id for item in items]
    known = set(
        session.scalars(
            select(Event.object_id).where(
                (Event.connection_id == connection_id)
                & (Event.event_type == event_type)
                & Event.object_id.in_(ids)
            )
        )
    )
    fresh = [item for item in items if item.object_id not in known]
    if not fresh:
        return []
    session.execute(
        update(Connection)
        .where(Connection.id == connection_id)
        .values(event_seq=Connection.event_seq + len(fresh))
    )
    last_seq = session.scalar(select(Connection.event_seq).where(Connection.id == connection_id))
    first_seq = int(last_seq or 0) - len(fresh) + 1
    events = [
        Event(
            connection_id=connection_id,
            seq=first_seq + offset,
            event_type=event_type,
            agent_id=agent_id,
            object_id=item.object_id,
            occurred_at=item.occurred_at,
            payload_json=json.dumps(item.payload),
            seeded=seeded,
        )
        for offset, item in enumerate(fresh)
    ]
    session.add_all(events)
    session.flush()
    return [] if seeded else fan_out(session, events)


def owed(subscription: Subscription, event: Event) -> bool:
    """Whether the hook is owed the event: logged after it subscribed (`start_seq`: never what
    the log held already) and happened after it subscribed, by the event's own upstream time
    (less `CLOCK_TOLERANCE`), whenever it was detected.

    The second test is what keeps a new hook from the past still to be detected: the order of
    detection says nothing about it, and the upstream's time is the one record of when the
    event happened that does not depend on when, or by which process, the agent was read.
    """
    return event.seq > subscription.start_seq and _aware(event.occurred_at) >= owed_from(
        subscription
    )


def owed_from(subscription: Subscription) -> datetime:
    """The earliest upstream time of an event the hook is owed (see `owed`)."""
    return _aware(subscription.created_at) - CLOCK_TOLERANCE


def fan_out(session: Session, events: Sequence[Event]) -> list[int]:
    """Create one pending delivery per (event, active subscription wanting and `owed` it)."""
    if not events:
        return []
    sample = events[0]
    subscriptions = session.scalars(
        select(Subscription).where(
            (Subscription.connection_id == sample.connection_id)
            & (Subscription.event_type == sample.event_type)
            & (Subscription.state == "active")
            & or_(Subscription.agent_id.is_(None), Subscription.agent_id == sample.agent_id)
        )
    ).all()
    deliveries = []
    for event in events:
        for sub in subscriptions:
            if owed(sub, event):
                deliveries.append(Delivery(subscription_id=sub.id, event_id=event.id))
            elif event.seq > sub.start_seq:  # new to the log, but from before the hook: said
                log.info("hooks.not_owed hook=%s event=%s occurred_at=%s subscribed_at=%s",
                         sub.id, event.id, event.occurred_at, sub.created_at)  # fmt: skip
    session.add_all(deliveries)
    session.flush()
    return [delivery.id for delivery in deliveries]


def recent(
    session: Session,
    connection_id: str,
    event_type: str,
    agent_id: str,
    limit: int,
    since: datetime | None = None,
    after_id: str | None = None,
) -> list[dict[str, Any]]:
    """Return logged payloads newest first (the polling trigger's answer)."""
    query = select(Event).where(
        (Event.connection_id == connection_id)
        & (Event.event_type == event_type)
        & (Event.agent_id == agent_id)
    )
    if since is not None:
        query = query.where(Event.occurred_at > since)
    if after_id:
        anchor = session.scalar(
            select(Event).where(
                (Event.connection_id == connection_id)
                & (Event.event_type == event_type)
                & (Event.object_id == after_id)
            )
        )
        if anchor is not None:
            query = query.where(Event.seq > anchor.seq)
    rows = session.scalars(query.order_by(Event.occurred_at.desc(), Event.seq.desc()).limit(limit))
    return [json.loads(row.payload_json) for row in rows]


def current_seq(session: Session, connection_id: str) -> int:
    return int(
        session.scalar(select(Connection.event_seq).where(Connection.id == connection_id)) or 0
    )


def _aware(moment: datetime) -> datetime:
    """Stored times come back aware (`UTCDateTime`); one set in this session may not yet."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
