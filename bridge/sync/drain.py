"""Draining a connection's pending CMS documents into ZappWay, in batches, within its rate.

One `sync` call takes the due documents of one connection, groups them by datastore, and sends
upserts in batches (through `bridge.documents.service`, so ids map to upstream documents and
unchanged content is skipped) and deletes one by one. It never waits for the rate budget: when
the key's budget is spent it stops and says when to come back, so one tenant's backlog never
holds a worker thread that another tenant needs. A document is marked delivered only if its
version did not change while it was being sent. Failures follow a backoff schedule and end as
`dead` with the reason, until replayed. A failure of the whole call (5xx, timeout, refused key)
ends the run: the rest of the backlog waits for the failed batch's backoff instead of spending
calls that would fail the same way; a document ZappWay refuses (400/422/413) is isolated by
bisection. A worker told to stop ends the run after the batch in flight and reschedules the
rest for now, so the next worker goes on at once (no marker or lease left to expire).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from bridge.connections import service as connections
from bridge.documents.service import DocumentService
from bridge.documents.store import DocumentBusy, DocumentMap
from bridge.infra import metrics, queue
from bridge.infra.models import PendingDocument
from bridge.runtime import Runtime
from bridge.sync import cms_fetch, marker, sources
from bridge.sync import state as sync_state
from bridge.upstream.errors import (
    UpstreamError,
    UpstreamPayloadTooLarge,
    UpstreamRateLimited,
    UpstreamRejected,
)

log = logging.getLogger(__name__)
TIME_BUDGET_S = 20.0
PAUSE_S = 5.0  # after a 429 without Retry-After, when the sync schedule is empty


@dataclass
class SyncOutcome:
    delivered: int = 0
    failed: int = 0
    come_back_in: float | None = None


def sync(runtime: Runtime, connection_id: str) -> SyncOutcome:
    """Send this connection's due documents; `come_back_in` says when more work is due.

    The caller holds the connection's sync marker and must reschedule when `come_back_in` is
    set; when it is None the marker has been released.
    """
    outcome = SyncOutcome()
    started = time.monotonic()
    while time.monotonic() - started < TIME_BUDGET_S:
        if queue.stopping():  # the worker is stopping: hand the rest to the next one at once
            outcome.come_back_in = 0.0
            return outcome
        batch = sync_state.due_batch(runtime, connection_id)
        if not batch:
            break
        metrics.get().sync_batch_documents.observe(len(batch))
        marker.touch(runtime, connection_id)
        try:
            # Never waits for the key's budget (max_wait 0): a spent budget reschedules the run.
            zappway = connections.open_zappway(runtime, connection_id, max_wait=0)
            doc_map = DocumentMap(runtime.sessions, connection_id, sync_state.LEASE_PREFIX)
            _send(runtime, DocumentService(zappway, doc_map), batch, outcome)
        except DocumentBusy:
            outcome.come_back_in = sync_state.RECHECK_S  # another writer holds a document
            return outcome
        except UpstreamRateLimited as exc:
            outcome.come_back_in = _pause(runtime, exc)
            return outcome
        except _BackOff as exc:
            outcome.come_back_in = min(exc.delay, sync_state.RECHECK_S)
            return outcome
        except connections.ConnectionRevoked:
            outcome.failed += sync_state.fail_all(runtime, connection_id, "connection revoked")
            marker.release(runtime, connection_id)
            return outcome
    outcome.come_back_in = sync_state.next_due_in(runtime, connection_id)
    if outcome.come_back_in is None:
        marker.release(runtime, connection_id)
        # a webhook may have arrived between the last batch and the release
        outcome.come_back_in = sync_state.next_due_in(runtime, connection_id)
    return outcome


class _BackOff(Exception):
    """The whole call failed (ZappWay down, key refused): stop this run for `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


def _pause(runtime: Runtime, exc: UpstreamRateLimited) -> float:
    """Seconds to wait after a 429 or a spent budget: Retry-After (capped), else the backoff."""
    if exc.retry_after is not None:
        return max(1.0, min(exc.retry_after, sync_state.MAX_RETRY_AFTER_S))
    policy = sync_state.backoff(runtime)
    first = policy.delay(0)
    return max(1.0, first if first is not None else PAUSE_S * policy.spread())


def _send(
    runtime: Runtime, service: DocumentService, batch: list[PendingDocument], outcome: SyncOutcome
) -> None:
    targets = sources.targets(runtime, {row.source_id for row in batch})
    docs = _contents(runtime, batch, targets, outcome)
    by_store: dict[str, list[tuple[PendingDocument, dict[str, Any]]]] = {}
    for row in batch:
        if row.op == "upsert" and row.id in docs:
            by_store.setdefault(targets[row.source_id].datastore_id, []).append((row, docs[row.id]))
    for datastore_id, pairs in by_store.items():
        for chunk in _by_bytes(pairs, runtime.settings.sync_batch_bytes):
            _upsert_rows(runtime, service, datastore_id, chunk, outcome)
    for row in (row for row in batch if row.op == "delete"):
        sync_state.check_live(runtime, row.connection_id)
        try:
            upstream_id, _existed = service.delete(
                targets[row.source_id].datastore_id, sources.external_id(row.source_id, row.cms_id)
            )
        except UpstreamRateLimited:
            raise
        except UpstreamError as exc:
            delay = sync_state.fail(runtime, [row], exc.message, final=sync_state.is_final(exc))
            outcome.failed += 1
            if not sync_state.is_final(exc):
                raise _BackOff(delay) from exc
            continue
        sync_state.mark_delivered(runtime, [(row, upstream_id)])
        outcome.delivered += 1


def _by_bytes(
    pairs: list[tuple[PendingDocument, dict[str, Any]]], max_bytes: int
) -> list[list[tuple[PendingDocument, dict[str, Any]]]]:
    """Split one datastore's upserts so each call's documents stay under `max_bytes`."""
    chunks: list[list[tuple[PendingDocument, dict[str, Any]]]] = []
    size = 0
    for pair in pairs:
        doc_size = len(json.dumps(pair[1], default=str).encode())
        if not chunks or (chunks[-1] and size + doc_size > max_bytes):
            chunks.append([])
            size = 0
        chunks[-1].append(pair)
        size += doc_size
    return chunks


def _contents(
    runtime: Runtime, batch: list[PendingDocument], targets: dict[str, sources.Target],
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
                sync_state.fail(
                    runtime, [row], "thin payload and nothing to fetch it from", final=True
                )
                outcome.failed += 1
                continue
            marker.touch(runtime, row.connection_id)  # fetches are slow: stay alive
            try:
                fetched = cms_fetch.fetch(
                    runtime.outbound, stored["fetch"], targets[row.source_id].credentials
                )
            except cms_fetch.FetchFailed as exc:
                sync_state.fail(runtime, [row], exc.reason, final=exc.final, delay=exc.retry_after)
                outcome.failed += 1
                continue
            stored["text"] = fetched.text
            stored["title"] = stored.get("title") or fetched.title
            stored["updated_at"] = stored.get("updated_at") or fetched.updated_at
        if not stored.get("text"):
            reason = stored.get("no_text") or "the document has no text to index"
            sync_state.fail(runtime, [row], reason, final=True)
            outcome.failed += 1
            continue
        docs[row.id] = _document(row, stored)
    return docs


def _upsert_rows(
    runtime: Runtime, service: DocumentService, datastore_id: str,
    pairs: list[tuple[PendingDocument, dict[str, Any]]], outcome: SyncOutcome,
) -> None:  # fmt: skip
    sendable = [row for row, _doc in pairs]
    docs = [doc for _row, doc in pairs]
    sync_state.check_live(runtime, sendable[0].connection_id)
    try:
        results = service.upsert(datastore_id, docs)
    except UpstreamRateLimited:
        raise
    except (UpstreamRejected, UpstreamPayloadTooLarge) as exc:
        if len(sendable) == 1:
            reason = exc.message
            if isinstance(exc, UpstreamPayloadTooLarge):
                reason = "the document is larger than ZappWay accepts in one request"
            sync_state.fail(runtime, sendable, reason, final=True)
            outcome.failed += 1
            return
        half = len(pairs) // 2  # isolate the document ZappWay refuses
        _upsert_rows(runtime, service, datastore_id, pairs[:half], outcome)
        _upsert_rows(runtime, service, datastore_id, pairs[half:], outcome)
        return
    except UpstreamError as exc:
        delay = sync_state.fail(runtime, sendable, exc.message, final=sync_state.is_final(exc))
        outcome.failed += len(sendable)
        if not sync_state.is_final(exc):
            raise _BackOff(delay) from exc
        return
    sync_state.mark_delivered(
        runtime, [(row, result.upstream_id) for row, result in zip(sendable, results, strict=True)]
    )
    outcome.delivered += len(sendable)


def _document(row: PendingDocument, stored: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": sources.external_id(row.source_id, row.cms_id),
        "text": stored["text"],
    }
    for name in ("title", "url"):
        if stored.get(name):
            doc[name] = stored[name]
    metadata = dict(stored.get("metadata") or {})
    if stored.get("updated_at"):
        metadata["updated_at"] = stored["updated_at"]
    if metadata:
        doc["metadata"] = metadata
    return doc
