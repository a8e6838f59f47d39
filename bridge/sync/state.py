"""The durable state of CMS sync: the connection's marker and each pending document's fate.

A connection's `sync_due_at` marker says a sync task is scheduled or running (moved forward at
every batch, so the sweep can tell a live task from one a killed worker lost). A pending row
leaves `pending` as `delivered` (compare-and-set on its version, so a newer version that arrived
meanwhile is sent next), back to `pending` after a jittered delay from the retry schedule, or
`dead` with the reason, until replayed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from bridge.connections import service as connections
from bridge.documents import store as document_map
from bridge.infra.backoff import Backoff
from bridge.infra.models import Connection, PendingDocument
from bridge.runtime import Runtime
from bridge.upstream.errors import UpstreamError, UpstreamResponseError

log = logging.getLogger(__name__)
MAX_RETRY_AFTER_S = 3600.0
RECHECK_S = 30.0  # longest idle wait while documents wait for a retry: newer ones are not held
LEASE_PREFIX = "sync-"  # document-map leases taken by sync runs


def check_live(runtime: Runtime, connection_id: str) -> None:
    """Re-check revocation right before each upstream write (a batch's CMS fetches may take a
    while after the batch's own check).

    Raises:
        connections.ConnectionRevoked: the connection was revoked meanwhile.
    """
    with runtime.sessions() as session:
        revoked_at = session.scalar(
            select(Connection.revoked_at).where(Connection.id == connection_id)
        )
    if revoked_at is not None:
        raise connections.ConnectionRevoked(connection_id)


def backoff(runtime: Runtime) -> Backoff:
    """The sync schedule (`Settings.sync_retry_schedule`, ±20 % jitter)."""
    return Backoff.fixed(runtime.settings.sync_retry_schedule, jitter=0.2)


def is_final(exc: UpstreamError) -> bool:
    """4xx other than 401/429 will not get better by waiting."""
    if isinstance(exc, UpstreamResponseError) and 400 <= exc.status_code < 500:
        return exc.status_code not in (401, 429)
    return False


def due_batch(runtime: Runtime, connection_id: str) -> list[PendingDocument]:
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(PendingDocument)
                .where(PendingDocument.connection_id == connection_id)
                .where(PendingDocument.state == "pending")
                .where(PendingDocument.next_attempt_at <= now)
                # Untried documents first: a batch that keeps failing (one document ZappWay
                # answers 5xx for) waits for its retry while the rest of the backlog flows.
                .order_by(PendingDocument.attempts, PendingDocument.updated_at, PendingDocument.id)
                .limit(runtime.settings.sync_batch_size)
            )
        )


def mark_delivered(runtime: Runtime, sent: list[tuple[PendingDocument, str | None]]) -> None:
    """Delivered only if no newer version arrived meanwhile (compare-and-set on version)."""
    table = cast(Table, PendingDocument.__table__)
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .where(table.c.version == bindparam("b_version"))
        .values(
            state="delivered",
            upstream_id=bindparam("b_upstream_id"),
            delivered_version=bindparam("b_version"),
            last_error=None,
        )
    )
    params = [
        {"b_id": row.id, "b_version": row.version, "b_upstream_id": upstream_id}
        for row, upstream_id in sent
    ]
    with runtime.sessions() as session:
        session.connection().execute(statement, params)
        session.commit()


def fail(
    runtime: Runtime, rows: list[PendingDocument], reason: str, final: bool,
    delay: float | None = None,
) -> float:  # fmt: skip
    """Record a failed attempt: retry on the schedule (or after `delay`), or dead-letter.

    Returns the shortest wait given to a row that will be retried (0 when none will).
    """
    policy = backoff(runtime)
    now = datetime.now(UTC)
    waits: list[float] = []
    # One jitter per failed call: it spreads connections apart, but keeps a batch together.
    factor = policy.spread()
    floor = None if delay is None else min(delay, MAX_RETRY_AFTER_S)
    with runtime.sessions() as session:
        for row in rows:
            attempts = row.attempts + 1
            retry_in = None if final else policy.delay(attempts - 1, floor, factor=factor)
            dead = retry_in is None
            wait = 0.0 if retry_in is None else retry_in
            if not dead:
                waits.append(wait)
            session.execute(
                update(PendingDocument)
                .where(PendingDocument.id == row.id)
                .where(PendingDocument.version == row.version)
                .values(
                    attempts=attempts,
                    last_error=reason[:300],
                    state="dead" if dead else "pending",
                    next_attempt_at=now + timedelta(seconds=wait),
                )
            )
        session.commit()
    log.warning("sync.failed documents=%d final=%s reason=%s", len(rows), final, reason[:80])
    return min(waits, default=0.0)


def fail_all(runtime: Runtime, connection_id: str, reason: str) -> int:
    """Dead-letter every pending document of the connection (it was revoked); returns how many."""
    with runtime.sessions() as session:
        count = session.execute(  # type: ignore[attr-defined]  # DML results have rowcount
            update(PendingDocument)
            .where(PendingDocument.connection_id == connection_id)
            .where(PendingDocument.state == "pending")
            .values(state="dead", last_error=reason)
        ).rowcount
        session.commit()
    log.warning("sync.revoked connection=%s documents=%d", connection_id, count)
    return int(count)


def release_own_leases(runtime: Runtime, connection_id: str) -> int:
    """Free the document leases this process's sync run of the connection holds; returns how
    many. For a process handing back a run it cannot finish, so the run queued again goes on
    at once instead of after the leases. (A killed run's leases need nothing: nobody renews
    them, so they end within `documents.store.LEASE`, 30 s, before its marker is presumed
    dead at the default BRIDGE_SYNC_STALE_AFTER.)"""
    return document_map.release_own_leases(runtime.sessions, connection_id, LEASE_PREFIX)


def next_due_in(runtime: Runtime, connection_id: str) -> float | None:
    with runtime.sessions() as session:
        due = session.scalar(
            select(PendingDocument.next_attempt_at)
            .where(PendingDocument.connection_id == connection_id)
            .where(PendingDocument.state == "pending")
            .order_by(PendingDocument.next_attempt_at)
            .limit(1)
        )
    if due is None:
        return None
    return min(RECHECK_S, max(0.0, (due - datetime.now(UTC)).total_seconds()))


def replay(runtime: Runtime, source_id: str) -> int:
    """Send dead documents of a source again (attempts reset); returns how many."""
    with runtime.sessions() as session:
        count = session.execute(  # type: ignore[attr-defined]  # DML results have rowcount
            update(PendingDocument)
            .where(PendingDocument.source_id == source_id)
            .where(PendingDocument.state == "dead")
            .values(state="pending", attempts=0, next_attempt_at=datetime.now(UTC))
        ).rowcount
        session.commit()
    return int(count)


def connections_due(runtime: Runtime) -> list[str]:
    """Connections with documents due now (the sweep claims their markers when stale)."""
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(PendingDocument.connection_id)
                .where(PendingDocument.state == "pending")
                .where(PendingDocument.next_attempt_at <= now)
                .distinct()
            )
        )


def cancel_source(session: Session, source_id: str) -> None:
    """The source was deleted: its documents still waiting are not sent (the caller commits)."""
    session.execute(
        update(PendingDocument)
        .where(PendingDocument.source_id == source_id)
        .where(PendingDocument.state == "pending")
        .values(state="cancelled", last_error="source deleted")
    )


def document_counts(
    session: Session, connection_id: str, source_id: str | None = None
) -> dict[str, int]:
    """How many of the connection's (or one source's) documents are in each state."""
    query = (
        select(PendingDocument.state, func.count())
        .where(PendingDocument.connection_id == connection_id)
        .group_by(PendingDocument.state)
    )
    if source_id is not None:
        query = query.where(PendingDocument.source_id == source_id)
    return {state: count for state, count in session.execute(query)}
