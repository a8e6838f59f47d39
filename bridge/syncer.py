"""Draining a connection's pending CMS documents into ZappWay, in batches, within its rate.

One `sync` call takes the due documents of one connection, groups them by datastore, and sends
upserts in batches (through `bridge.documents`, so ids map to upstream documents and unchanged
content is skipped) and deletes one by one. It never waits for the rate budget: when the key's
budget is spent it stops and says when to come back, so one tenant's backlog never holds a worker
thread that another tenant needs. A document is marked delivered only if its version did not
change while it was being sent. Failures follow a backoff schedule and end as `dead` with the
reason, until replayed.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bridge import cms_fetch, connections, documents, sources
from bridge.models import Connection, PendingDocument, Source
from bridge.runtime import Runtime
from bridge.upstream_errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamResponseError,
)

log = logging.getLogger(__name__)
TIME_BUDGET_S = 20.0
STALE_MARKER = timedelta(minutes=2)
MAX_RETRY_AFTER_S = 3600.0


@dataclass
class SyncOutcome:
    delivered: int = 0
    failed: int = 0
    come_back_in: float | None = None


def external_id(source_id: str, cms_id: str) -> str:
    """The deterministic id the bridge gives a CMS document in ZappWay (per source)."""
    return f"{source_id}:{cms_id}"


def claim_sync(session: Session, connection_id: str, delay_s: float) -> bool:
    """Mark a sync task as scheduled for the connection; True only for the one caller that did.

    The marker is the connection's `sync_due_at`: set while a task is scheduled or running, so
    a burst of webhooks schedules one task; a marker older than `STALE_MARKER` belongs to a task
    a killed worker lost, and may be claimed again.
    """
    now = datetime.now(UTC)
    claimed = session.execute(  # type: ignore[attr-defined]  # DML results have rowcount
        update(Connection)
        .where(Connection.id == connection_id)
        .where(Connection.sync_due_at.is_(None) | (Connection.sync_due_at < now - STALE_MARKER))
        .values(sync_due_at=now + timedelta(seconds=delay_s))
    ).rowcount
    return bool(claimed)


def sync(runtime: Runtime, connection_id: str) -> SyncOutcome:
    """Send this connection's due documents; `come_back_in` says when more work is due.

    The caller holds the connection's sync marker and must reschedule when `come_back_in` is
    set; when it is None the marker has been released.
    """
    outcome = SyncOutcome()
    started = time.monotonic()
    while time.monotonic() - started < TIME_BUDGET_S:
        batch = _due_batch(runtime, connection_id)
        if not batch:
            break
        try:
            with runtime.action_context(connection_id, max_wait=0) as ctx:
                _send(runtime, ctx.zappway, ctx.documents, batch, outcome)
        except UpstreamRateLimited as exc:
            outcome.come_back_in = max(1.0, exc.retry_after or 1.0)
            return outcome
        except connections.ConnectionRevoked:
            _fail(runtime, batch, "connection revoked", final=True)
            return outcome
    outcome.come_back_in = _next_due_in(runtime, connection_id)
    if outcome.come_back_in is None:
        _release_marker(runtime, connection_id)
        outcome.come_back_in = _next_due_in(runtime, connection_id)  # raced with a new webhook
    return outcome


@dataclass(frozen=True)
class Target:
    """Where a source's documents go, and the CMS credentials its thin payloads need."""

    datastore_id: str
    credentials: dict[str, str]


def _send(
    runtime: Runtime, zappway: Any, doc_map: documents.DocumentMap,
    batch: list[PendingDocument], outcome: SyncOutcome,
) -> None:  # fmt: skip
    targets = _targets(runtime, {row.source_id for row in batch})
    docs = _contents(runtime, batch, targets, outcome)
    by_store: dict[str, list[tuple[PendingDocument, dict[str, Any]]]] = {}
    for row in batch:
        if row.op == "upsert" and row.id in docs:
            by_store.setdefault(targets[row.source_id].datastore_id, []).append((row, docs[row.id]))
    for datastore_id, pairs in by_store.items():
        _upsert_rows(runtime, zappway, doc_map, datastore_id, pairs, outcome)
    for row in (row for row in batch if row.op == "delete"):
        try:
            upstream_id, _existed = documents.delete_document(
                zappway, doc_map, targets[row.source_id].datastore_id,
                external_id(row.source_id, row.cms_id),
            )  # fmt: skip
        except UpstreamRateLimited:
            raise
        except UpstreamError as exc:
            _fail(runtime, [row], exc.message, final=_is_final(exc))
            outcome.failed += 1
            continue
        _mark_delivered(runtime, row, upstream_id)
        outcome.delivered += 1


def _contents(
    runtime: Runtime, batch: list[PendingDocument], targets: dict[str, Target],
    outcome: SyncOutcome,
) -> dict[int, dict[str, Any]]:  # fmt: skip
    """The document to send for each upsert; thin ones are fetched from the CMS first."""
    docs: dict[int, dict[str, Any]] = {}
    for row in batch:
        if row.op != "upsert":
            continue
        stored = json.loads(row.document_json)
        if stored.get("thin"):
            if not stored.get("fetch"):
                _fail(runtime, [row], "thin payload and nothing to fetch it from", final=True)
                outcome.failed += 1
                continue
            try:
                fetched = cms_fetch.fetch(
                    runtime.deliverer, stored["fetch"], targets[row.source_id].credentials
                )
            except cms_fetch.FetchFailed as exc:
                _fail(runtime, [row], exc.reason, final=exc.final, delay=exc.retry_after)
                outcome.failed += 1
                continue
            stored["text"] = fetched.text
            stored["title"] = stored.get("title") or fetched.title
            stored["updated_at"] = stored.get("updated_at") or fetched.updated_at
        if not stored.get("text"):
            _fail(runtime, [row], "the document has no text to index", final=True)
            outcome.failed += 1
            continue
        docs[row.id] = _document(row, stored)
    return docs


def _upsert_rows(
    runtime: Runtime, zappway: Any, doc_map: documents.DocumentMap, datastore_id: str,
    pairs: list[tuple[PendingDocument, dict[str, Any]]], outcome: SyncOutcome,
) -> None:  # fmt: skip
    sendable = [row for row, _doc in pairs]
    docs = [doc for _row, doc in pairs]
    try:
        results = documents.upsert_documents(zappway, doc_map, datastore_id, docs)
    except UpstreamRateLimited:
        raise
    except UpstreamRejected as exc:
        if len(sendable) == 1:
            _fail(runtime, sendable, exc.message, final=True)
            outcome.failed += 1
            return
        half = len(pairs) // 2  # isolate the document ZappWay refuses
        _upsert_rows(runtime, zappway, doc_map, datastore_id, pairs[:half], outcome)
        _upsert_rows(runtime, zappway, doc_map, datastore_id, pairs[half:], outcome)
        return
    except UpstreamError as exc:
        if isinstance(exc, UpstreamAuthError):
            _flag_key(runtime, sendable[0].connection_id)
        _fail(runtime, sendable, exc.message, final=_is_final(exc))
        outcome.failed += len(sendable)
        return
    for row, result in zip(sendable, results, strict=True):
        _mark_delivered(runtime, row, result.upstream_id)
        outcome.delivered += 1


def _document(row: PendingDocument, stored: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": external_id(row.source_id, row.cms_id), "text": stored["text"]}
    for name in ("title", "url"):
        if stored.get(name):
            doc[name] = stored[name]
    metadata = dict(stored.get("metadata") or {})
    if stored.get("updated_at"):
        metadata["updated_at"] = stored["updated_at"]
    if metadata:
        doc["metadata"] = metadata
    return doc


def _is_final(exc: UpstreamError) -> bool:
    """4xx other than 401/429 will not get better by waiting."""
    if isinstance(exc, UpstreamResponseError) and 400 <= exc.status_code < 500:
        return exc.status_code not in (401, 429)
    return False


def _due_batch(runtime: Runtime, connection_id: str) -> list[PendingDocument]:
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(PendingDocument)
                .where(PendingDocument.connection_id == connection_id)
                .where(PendingDocument.state == "pending")
                .where(PendingDocument.next_attempt_at <= now)
                .order_by(PendingDocument.updated_at, PendingDocument.id)
                .limit(runtime.settings.sync_batch_size)
            )
        )


def _targets(runtime: Runtime, source_ids: set[str]) -> dict[str, Target]:
    with runtime.sessions() as session:
        rows = session.scalars(select(Source).where(Source.id.in_(source_ids)))
        return {
            row.id: Target(row.datastore_id, sources.fetch_credentials(row, runtime.box))
            for row in rows
        }


def _mark_delivered(runtime: Runtime, row: PendingDocument, upstream_id: str | None) -> None:
    """Delivered only if no newer version arrived meanwhile (compare-and-set on version)."""
    with runtime.sessions() as session:
        session.execute(
            update(PendingDocument)
            .where(PendingDocument.id == row.id)
            .where(PendingDocument.version == row.version)
            .values(
                state="delivered",
                upstream_id=upstream_id,
                delivered_version=row.version,
                last_error=None,
            )
        )
        session.commit()


def _fail(
    runtime: Runtime, rows: list[PendingDocument], reason: str, final: bool,
    delay: float | None = None,
) -> None:  # fmt: skip
    """Record a failed attempt: retry on the schedule (or after `delay`), or dead-letter."""
    schedule = runtime.settings.sync_retry_schedule
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        for row in rows:
            attempts = row.attempts + 1
            dead = final or attempts > len(schedule)
            wait = schedule[attempts - 1] * random.uniform(0.8, 1.2) if not dead else 0.0  # noqa: S311
            if delay is not None and not dead:
                wait = max(wait, min(delay, MAX_RETRY_AFTER_S))
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


def _flag_key(runtime: Runtime, connection_id: str) -> None:
    with runtime.sessions() as session:
        connection = session.get(Connection, connection_id)
        if connection is not None:
            connections.mark_key_rejected(connection)
            session.commit()


def _release_marker(runtime: Runtime, connection_id: str) -> None:
    with runtime.sessions() as session:
        session.execute(
            update(Connection).where(Connection.id == connection_id).values(sync_due_at=None)
        )
        session.commit()


def _next_due_in(runtime: Runtime, connection_id: str) -> float | None:
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
    return max(0.0, (due - datetime.now(UTC)).total_seconds())


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
