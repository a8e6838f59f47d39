"""Detecting new events: one upstream read per (connection, trigger, agent) per interval.

Polling requests and the worker both call `refresh`. A watch row per (connection, trigger, agent)
holds the durable cursor, the time of the last read (a shared cache: 100 Zaps polling one agent
cost one upstream call per interval) and a lease, so concurrent callers in any process never read
the same agent twice at once. The lease is short and renewed while the read runs
(`bridge.infra.leases`), so a process killed mid-read holds the agent for `LEASE` at most. A worker
told to stop gives a read up before its per-item lookups, and a read cut short by the stop timeout
frees its lease (`release_for_restart`), so the poll queued again runs at once. What is read and
how items look is the trigger module's business (`detect`, `render`); this module only keeps the
cursor and the log.

A new watch is seeded with the agent's most recent events from before the watch was created,
which polls show at once (Zapier's seeding poll needs them) but hooks never receive. Events after
the watch was created (a hook subscribes, a visitor writes, then the worker's first read) are
new. A watch outlives its hooks: with none it is not polled and keeps its cursor, so a later
hook's first read logs everything since as new; each hook is sent only what happened after it
subscribed (`event_log.owed`), so that past goes to no hook that did not exist then.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.connections import service as connections
from bridge.hooks import event_log
from bridge.infra import leases, queue
from bridge.infra.models import Connection, Subscription, Watch
from bridge.operation import Detected, Trigger
from bridge.registry import trigger_for
from bridge.runtime import Runtime
from bridge.upstream.errors import UpstreamNotFound
from bridge.upstream.zappway import ZappWay

log = logging.getLogger(__name__)
SEED_COUNT = 50
LEASE = leases.LENGTH
AGENT_CHECK_POLLS = 40  # legacy profile: ask whether the agent still exists every 40 intervals
HELD = leases.HeldLeases(Watch)  # this process's watch leases: renewed, and `release_for_restart`


@dataclass(frozen=True)
class RefreshResult:
    refreshed: bool
    delivery_ids: list[int]
    handed_back: bool = False  # a stopping worker gave the read up before its lookups: poll again


class _Stopping(Exception):
    """The worker was told to stop between a read's list and its lookups."""


@dataclass(frozen=True)
class WatchKey:
    id: int
    connection_id: str
    event_type: str
    agent_id: str


def ensure_watch(session: Session, connection_id: str, event_type: str, agent_id: str) -> Watch:
    """Return the watch for (connection, trigger, agent), creating it on first use."""
    where = (
        (Watch.connection_id == connection_id)
        & (Watch.event_type == event_type)
        & (Watch.agent_id == agent_id)
    )
    watch = session.scalar(select(Watch).where(where))
    if watch is not None:
        return watch
    session.add(Watch(connection_id=connection_id, event_type=event_type, agent_id=agent_id))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
    found = session.scalar(select(Watch).where(where))
    assert found is not None
    return found


def find_watch(runtime: Runtime, watch_id: int) -> WatchKey | None:
    with runtime.sessions() as session:
        watch = session.get(Watch, watch_id)
        if watch is None:
            return None
        return WatchKey(watch.id, watch.connection_id, watch.event_type, watch.agent_id)


def watched(runtime: Runtime) -> list[int]:
    """Watches with at least one active subscription, on live connections."""
    with runtime.sessions() as session:
        return list(session.scalars(_watched_query()))


def is_watched(runtime: Runtime, watch_id: int) -> bool:
    """Whether a hook still wants this watch polled (a poll already scheduled for a watch whose
    hooks were disabled or deleted since then is skipped)."""
    with runtime.sessions() as session:
        return is_watched_in(session, watch_id)


def is_watched_in(session: Session, watch_id: int) -> bool:
    """`is_watched`, read in the caller's session (as the hooks in it stand)."""
    return session.scalar(_watched_query().where(Watch.id == watch_id)) is not None


def _watched_query() -> Select[int]:
    subscribed = (
        select(Subscription.id)
        .where(Subscription.connection_id == Watch.connection_id)
        .where(Subscription.event_type == Watch.event_type)
        .where(Subscription.state == "active")
        .where(or_(Subscription.agent_id.is_(None), Subscription.agent_id == Watch.agent_id))
        .exists()
    )
    live = select(Connection.id).where(
        (Connection.id == Watch.connection_id) & Connection.revoked_at.is_(None)
    )
    return select(Watch.id).where(subscribed).where(Watch.connection_id.in_(live))


def agent_gone(runtime: Runtime, connection_id: str, event_type: str, agent_id: str) -> int:
    """Disable the active hooks on an agent ZappWay no longer has, saying why; returns how many.

    Polling it further would only spend the key's budget on 404s, and the hook would never fire
    nor say why. A replay of the hook makes it active again (say, once the agent is back).
    """
    reason = (
        f"ZappWay no longer has agent {agent_id} (404): polling stopped. Replay the hook once "
        "the agent is back, or subscribe to another agent"
    )
    with runtime.sessions() as session:
        disabled = session.execute(  # type: ignore[attr-defined]  # DML results have rowcount
            update(Subscription)
            .where(Subscription.connection_id == connection_id)
            .where(Subscription.event_type == event_type)
            .where(Subscription.agent_id == agent_id)
            .where(Subscription.state == "active")
            .values(state="disabled", state_reason=reason[:300], disabled_at=datetime.now(UTC))
        ).rowcount
        session.commit()
    if disabled:
        log.warning("hooks.agent_gone agent=%s hooks=%d", agent_id, disabled)
    return int(disabled)


def refresh(
    runtime: Runtime, trigger: Trigger, connection_id: str, agent_id: str, max_age_s: float,
    *, held: bool = False,
) -> RefreshResult:  # fmt: skip
    """Read the upstream for this agent unless it was read within `max_age_s` or is being read.

    `held`: not with a key ZappWay rejected minutes ago (the worker's polls, which nobody
    waits for; `connections.key_health`).

    Raises:
        UpstreamError: when the read fails (the watch records the error and stays usable);
            `KeyOnHold` when `held` and the key is on hold.
        ConnectionRevoked: when the connection was revoked.
    """
    with runtime.sessions() as session:
        watch = ensure_watch(session, connection_id, trigger.event_type, agent_id)
        last_read = _aware(watch.polled_at)  # before the claim moves it
        claimed_at = time.monotonic()  # before the lease's end is computed
        token = _claim(session, watch.id, max_age_s)
        if token is None:
            return RefreshResult(False, [])
        claimed = _Claimed(
            WatchKey(watch.id, connection_id, trigger.event_type, agent_id),
            token=token,
            last_read=last_read,
            cursor=_aware(watch.cursor_created_at),
            seeding=watch.seeded_at is None,
            watched_since=_aware(watch.created_at),
        )
    HELD.hold(runtime.sessions, [watch.id], token, claimed_at)
    try:
        return _read(runtime, trigger, claimed, held)
    finally:
        HELD.drop([claimed.watch.id], token)


@dataclass(frozen=True)
class _Claimed:
    """A watch whose lease `refresh` took, as it stood before the read."""

    watch: WatchKey
    token: str  # the lease's (`leases.new_token`)
    last_read: datetime | None
    cursor: datetime | None
    seeding: bool  # never read before: what predates the watch is history
    watched_since: datetime | None


def _read(runtime: Runtime, trigger: Trigger, claimed: _Claimed, held: bool) -> RefreshResult:
    """`refresh` once the lease is taken: read, then log what is new and free the watch."""
    watch, cursor, seeding = claimed.watch, claimed.cursor, claimed.seeding
    connection_id, agent_id = watch.connection_id, watch.agent_id
    watched_since = claimed.watched_since
    try:
        zappway = connections.open_zappway(runtime, connection_id, hold_rejected_key=held)
        if _agent_check_due(zappway, claimed.last_read, runtime.settings.poll_interval_s):
            zappway.get_agent(agent_id)
        found = trigger.detect(zappway, agent_id, cursor)
        if queue.stopping():  # a safe point: nothing stored yet, the next worker reads again
            raise _Stopping
        past: list[Detected] = []
        if seeding:
            # Events from before the watch existed are history (polls only); any since (say
            # between a hook's subscribe and this first read) are new.
            past = [d for d in found if watched_since is None or d.occurred_at <= watched_since]
            found = found[len(past) :]
            past = past[-SEED_COUNT:]
        detected = past + found
        payloads = trigger.render(zappway, agent_id, detected)
        items = [
            event_log.NewEvent(d.object_id, d.occurred_at, payload)
            for d, payload in zip(detected, payloads, strict=True)
        ]
    except _Stopping:
        release_for_restart(runtime, watch.id)
        return RefreshResult(False, [], handed_back=True)
    except Exception as exc:
        _release(runtime, claimed, error=_describe(exc))
        if isinstance(exc, UpstreamNotFound):  # the agent itself is gone
            agent_gone(runtime, connection_id, trigger.event_type, agent_id)
        raise
    try:
        delivery_ids = _store(runtime, trigger, claimed, items, len(past))
    except IntegrityError:
        # Only when this read's lease lapsed (its process stalled) and a read that took over
        # logged the same events first: they are logged, once.
        _release(runtime, claimed, error="another read logged these events first")
        return RefreshResult(False, [])
    if delivery_ids:
        log.info("detection.new agent=%s deliveries=%d", agent_id, len(delivery_ids))
    return RefreshResult(True, delivery_ids)


def _store(
    runtime: Runtime, trigger: Trigger, claimed: _Claimed, items: list[event_log.NewEvent],
    seeded_count: int,
) -> list[int]:  # fmt: skip
    """Log what a read found (its first `seeded_count` items as history), move the cursor and
    free the watch; the new deliveries' ids.

    The cursor only moves forward, and the lease is freed only if it is still this read's: a
    read whose lease lapsed (and was taken over) must not undo the newer read's work.
    """
    watch = claimed.watch
    with runtime.sessions() as session:
        key = (watch.connection_id, trigger.event_type, watch.agent_id)
        delivery_ids = event_log.append(session, *key, items[:seeded_count], seeded=True)
        delivery_ids += event_log.append(session, *key, items[seeded_count:], seeded=False)
        ours = Watch.lease_token == claimed.token
        values: dict[str, Any] = {
            "lease_until": case((ours, None), else_=Watch.lease_until),
            "lease_token": case((ours, None), else_=Watch.lease_token),
            "last_error": None,
        }
        newest = max((item.occurred_at for item in items), default=None)
        if newest is not None:
            stored, fresh = Watch.cursor_created_at, literal(newest, Watch.cursor_created_at.type)
            values["cursor_created_at"] = case(
                (stored.is_(None) | (stored < fresh), fresh), else_=stored
            )
        if claimed.seeding:
            values["seeded_at"] = datetime.now(UTC)
        session.execute(update(Watch).where(Watch.id == watch.id).values(**values))
        session.commit()
    return delivery_ids


def refresh_watch(runtime: Runtime, watch: WatchKey, max_age_s: float) -> RefreshResult:
    """`refresh` for a stored watch (the worker's poll, held while the key is rejected)."""
    trigger = trigger_for(watch.event_type)
    return refresh(runtime, trigger, watch.connection_id, watch.agent_id, max_age_s, held=True)


def _agent_check_due(zappway: ZappWay, last_read: datetime | None, interval_s: float) -> bool:
    """Whether this read should first ask whether the agent still exists.

    The documented conversation list answers 404 for a deleted agent by itself; the legacy one
    (`/logs?agentId=`) answers an empty list, so there the agent is asked for on a watch's first
    read and then once every `AGENT_CHECK_POLLS` intervals (10 minutes at the default 15 s).
    """
    if not zappway.legacy:
        return False
    if last_read is None:
        return True
    slot = interval_s * AGENT_CHECK_POLLS
    return last_read.timestamp() // slot != datetime.now(UTC).timestamp() // slot


def _claim(session: Session, watch_id: int, max_age_s: float) -> str | None:
    """Take the watch's lease if its last read is older than `max_age_s` and nobody holds it;
    the lease's token, or None when not taken."""
    now = datetime.now(UTC)
    stale = now - timedelta(seconds=max_age_s)
    token = leases.new_token()
    won = session.execute(  # type: ignore[attr-defined]  # DML results have rowcount
        update(Watch)
        .where(Watch.id == watch_id)
        .where(or_(Watch.lease_until.is_(None), Watch.lease_until < now))
        .where(or_(Watch.polled_at.is_(None), Watch.polled_at <= stale))
        .values(lease_until=now + LEASE, lease_token=token, polled_at=now)
    ).rowcount
    session.commit()
    return token if won else None


def release_for_restart(runtime: Runtime, watch_id: int) -> None:
    """Free the lease this process holds for a poll it abandons (told to stop, or cut at the
    stop timeout: the read's result is never stored, so the cursor has not moved) and forget
    that read, so the poll queued again reads at once instead of waiting for `LEASE` and the
    watch's interval. A lease another process took since is left alone."""
    token = HELD.held([watch_id]).get(watch_id)
    if token is None:
        return
    with runtime.sessions() as session:
        session.execute(
            update(Watch)
            .where(Watch.id == watch_id, Watch.lease_token == token)
            .values(lease_until=None, lease_token=None, polled_at=None)
        )
        session.commit()


def _release(runtime: Runtime, claimed: _Claimed, error: str) -> None:
    """Free the watch after a failed read and say why (not when another read took over)."""
    with runtime.sessions() as session:
        session.execute(
            update(Watch)
            .where(Watch.id == claimed.watch.id, Watch.lease_token == claimed.token)
            .values(lease_until=None, lease_token=None, last_error=error)
        )
        session.commit()


def _describe(exc: Exception) -> str:
    message = getattr(exc, "message", None) or type(exc).__name__
    return str(message)[:300]


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
