"""Detecting new conversations: one upstream read per (connection, agent) per interval.

Polling requests and the worker both call `refresh`. A watch row per (connection, agent) holds
the durable cursor, the time of the last read (a shared cache: 100 Zaps polling one agent cost
one upstream call per interval) and a lease, so concurrent callers in any process never read the
same agent twice at once. A new watch is seeded with the agent's most recent conversations begun
before the watch was created, which polls show at once (Zapier's seeding poll needs them) but
hooks never receive (they only get events logged after they subscribed). Conversations begun after
the watch was created (a hook subscribes, a visitor writes, then the worker's first read) are new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.hooks import conversation_feed
from bridge.hooks import event_log as events
from bridge.infra.models import Watch
from bridge.runtime import Runtime
from bridge.upstream.client import UpstreamClient

log = logging.getLogger(__name__)
EVENT_TYPE = "new_conversation"
SEED_COUNT = 50
LEASE = timedelta(seconds=60)
MAX_MESSAGE_LOOKUPS = 20  # per read: each costs one upstream call from the key's budget


@dataclass(frozen=True)
class RefreshResult:
    refreshed: bool
    delivery_ids: list[int]


def ensure_watch(session: Session, connection_id: str, agent_id: str) -> Watch:
    """Return the watch for (connection, agent), creating it on first use."""
    where = (Watch.connection_id == connection_id) & (Watch.agent_id == agent_id)
    watch = session.scalar(select(Watch).where(where))
    if watch is not None:
        return watch
    session.add(Watch(connection_id=connection_id, agent_id=agent_id))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
    found = session.scalar(select(Watch).where(where))
    assert found is not None
    return found


def refresh(runtime: Runtime, connection_id: str, agent_id: str, max_age_s: float) -> RefreshResult:
    """Read the upstream for this agent unless it was read within `max_age_s` or is being read.

    Raises:
        UpstreamError: when the read fails (the watch records the error and stays usable).
        ConnectionRevoked: when the connection was revoked.
    """
    with runtime.sessions() as session:
        watch = ensure_watch(session, connection_id, agent_id)
        if not _claim(session, watch.id, max_age_s):
            return RefreshResult(False, [])
        cursor = watch.cursor_created_at
        seeding = watch.seeded_at is None
        watched_since = _aware(watch.created_at)
    try:
        with runtime.action_context(connection_id) as ctx:
            client = ctx.zappway.client
            found = conversation_feed.fetch_since(client, agent_id, _aware(cursor))
            past: list[dict[str, Any]] = []
            if seeding:
                # Conversations begun before the watch existed are history (polls only); any
                # begun since (say between a hook's subscribe and this first read) are new.
                past = [c for c in found if watched_since is None or c["_created"] <= watched_since]
                found = found[len(past) :]
                past = past[-SEED_COUNT:]
            items = _to_events(client, agent_id, past + found)
    except Exception as exc:
        _release(runtime, watch.id, error=_describe(exc))
        raise
    with runtime.sessions() as session:
        delivery_ids = events.append(
            session, connection_id, EVENT_TYPE, agent_id, items[: len(past)], seeded=True
        )
        delivery_ids += events.append(
            session, connection_id, EVENT_TYPE, agent_id, items[len(past) :], seeded=False
        )
        newest = max((item.occurred_at for item in items), default=_aware(cursor))
        values: dict[str, Any] = {
            "cursor_created_at": newest,
            "lease_until": None,
            "last_error": None,
        }
        if seeding:
            values["seeded_at"] = datetime.now(UTC)
        session.execute(update(Watch).where(Watch.id == watch.id).values(**values))
        session.commit()
    if delivery_ids:
        log.info("detection.new agent=%s deliveries=%d", agent_id, len(delivery_ids))
    return RefreshResult(True, delivery_ids)


def _to_events(
    client: UpstreamClient, agent_id: str, found: list[dict[str, Any]]
) -> list[events.NewEvent]:
    """Shape conversations as events, looking up first messages for the newest few only."""
    items = []
    for index, conversation in enumerate(found):
        message = None
        if index >= len(found) - MAX_MESSAGE_LOOKUPS:
            message = conversation_feed.first_message(client, str(conversation["id"]))
        payload = conversation_feed.to_item(conversation, agent_id, message)
        items.append(events.NewEvent(str(conversation["id"]), conversation["_created"], payload))
    return items


def _claim(session: Session, watch_id: int, max_age_s: float) -> bool:
    """Take the watch's lease if its last read is older than `max_age_s` and nobody holds it."""
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=max_age_s)
    won = session.execute(  # type: ignore[attr-defined]  # DML results have rowcount
        update(Watch)
        .where(Watch.id == watch_id)
        .where(or_(Watch.lease_until.is_(None), Watch.lease_until < now))
        .where(or_(Watch.polled_at.is_(None), Watch.polled_at <= stale))
        .values(lease_until=now + LEASE, polled_at=now)
    ).rowcount
    session.commit()
    return bool(won)


def _release(runtime: Runtime, watch_id: int, error: str) -> None:
    with runtime.sessions() as session:
        session.execute(
            update(Watch).where(Watch.id == watch_id).values(lease_until=None, last_error=error)
        )
        session.commit()


def _describe(exc: Exception) -> str:
    message = getattr(exc, "message", None) or type(exc).__name__
    return str(message)[:300]


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
