"""Receiving one CMS webhook: verify, parse, map, store durably, acknowledge. No upstream call.

The recipe runs in the request, in one transaction: the verifier chosen by the source (never by
sniffing headers) checks the raw bytes; a repeated delivery id is acknowledged and dropped; each
mapped change is coalesced into its document's row, where only a newer version replaces what is
there (a delete is a versioned tombstone); the connection's sync is scheduled once per debounce.
Everything slow (fetching thin payloads, calling ZappWay) happens later in the worker.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection as DBConnection
from sqlalchemy import Insert, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bridge.crypto import SecretBox
from bridge.inbound.errors import MappingError
from bridge.inbound.generic import GenericConfig
from bridge.inbound.mapping import Change, delivery_key, map_event
from bridge.inbound.providers import PROVIDERS, Provider
from bridge.inbound.verify import VerificationError, verify
from bridge.models import InboundEvent, PendingDocument
from bridge.source_config import resolve
from bridge.sources import InboundTarget, active_secrets
from bridge.syncer import claim_sync, external_id, marker_is_free

log = logging.getLogger(__name__)
MAX_EXTERNAL_ID = 255  # DocumentMapping.external_id, where `<source id>:<cms id>` is kept
MAX_VERSION = 40  # PendingDocument.version


@dataclass(frozen=True)
class IngestResult:
    status: str  # accepted | duplicate | ignored
    event_id: int | None
    changes: int
    schedule_sync: bool


class IngestRejected(Exception):
    """Raised when a request fails verification (400/401) or its verified payload is unusable
    (422); the event is recorded either way, with nothing queued."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def ingest(
    db: DBConnection,
    box: SecretBox,
    source: InboundTarget,
    *,
    raw_body: bytes,
    headers: Mapping[str, str],
    method: str,
    path: str,
    debounce_s: float,
) -> IngestResult:
    """Run the recipe for one request on `db` (a Core connection: no ORM on this path); the
    caller commits.

    Raises:
        IngestRejected: verification or parsing failed (a rejected event is recorded).
    """
    provider, config = _recipe(source.provider, source.config_json)
    now = time.time()
    try:
        verify(provider, active_secrets(source, box, datetime.now(UTC)), raw_body, headers,
               method=method, path=path, now=now, config=config)  # fmt: skip
    except VerificationError as exc:
        _record(db, source, None, "rejected", exc.reason, [])
        raise IngestRejected(exc.status, exc.reason) from exc
    try:
        payload = json.loads(raw_body)
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, or nested too deep
        _record(db, source, None, "rejected", "malformed-json", [])
        raise IngestRejected(400, "malformed-json") from exc
    try:
        changes, key = _read(source, provider, config, payload, headers, now)
    except MappingError as exc:
        _record(db, source, None, "unmappable", exc.reason, [])
        raise IngestRejected(422, exc.reason) from exc
    event_id = _record(db, source, key, "accepted", None, changes)
    if event_id is None:
        return IngestResult("duplicate", None, 0, False)
    _coalesce(db, source, changes)
    schedule = (
        bool(changes)
        and marker_is_free(source.sync_due_at)  # most webhooks of a burst stop here
        and claim_sync(db, source.connection_id, debounce_s)
    )
    return IngestResult("accepted" if changes else "ignored", event_id, len(changes), schedule)


@functools.lru_cache(maxsize=1024)
def _recipe(provider_key: str, config_json: str) -> tuple[Provider, GenericConfig | None]:
    """The source's verifier and mapping, parsed once per distinct stored config."""
    return resolve(PROVIDERS[provider_key], json.loads(config_json))


def _read(
    source: InboundTarget, provider: Provider, config: GenericConfig | None, payload: Any,
    headers: Mapping[str, str], now: float,
) -> tuple[list[Change], str | None]:  # fmt: skip
    """Map a verified payload and find its delivery key, refusing what cannot be stored.

    Raises:
        MappingError: the provider's own reason; `malformed-payload` when a field has a type
            the mapper does not expect; `bad-id` / `bad-version` when a value does not fit
            the storage columns (too long, or an id with control characters).
    """
    try:
        changes = map_event(provider, payload, headers, config, received_at=now)
        key = delivery_key(provider, payload, headers, config)
    except MappingError:
        raise
    # A verified sender may still put a list where a string belongs: that is a 422 the user
    # sees in the source's events, not a 500 the sender would retry for hours.
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError,
            RecursionError) as exc:  # fmt: skip
        log.warning("inbound.unmappable provider=%s error=%s", provider.key, type(exc).__name__)
        raise MappingError("malformed-payload") from exc
    for change in changes:
        document_id = external_id(source.id, change.cms_id)
        if len(document_id) > MAX_EXTERNAL_ID or not change.cms_id.isprintable():
            raise MappingError("bad-id")
        if len(change.version) > MAX_VERSION:
            raise MappingError("bad-version")
    return changes, key


def _record(
    db: DBConnection, source: InboundTarget, key: str | None, status: str, reason: str | None,
    changes: list[Change],
) -> int | None:  # fmt: skip
    """Record the event; its id, or None when its delivery key was already received.

    `INSERT ... ON CONFLICT DO NOTHING` rather than a savepoint: on SQLite a savepoint opened
    before any write starts the transaction itself, and releasing it commits, so the event
    would be durable even if the rest of the request failed, and the sender's retry would
    then be dropped as a duplicate with its change lost. Events without a key never conflict
    (NULLs are distinct in the unique index).
    """
    inserted = db.execute(_statements(db.dialect.name).record, {
        "source_id": source.id, "delivery_key": key, "status": status, "reason": reason,
        "changes_json": _changes_json(changes), "received_at": datetime.now(UTC),
    }).scalar()  # fmt: skip
    return int(inserted) if inserted is not None else None


def _changes_json(changes: list[Change]) -> str:
    return json.dumps([{"cms_id": c.cms_id, "op": c.op, "version": c.version} for c in changes])


def _coalesce(db: DBConnection, source: InboundTarget, changes: list[Change]) -> None:
    """Upsert each document's row, replacing it only with a strictly newer version."""
    if not changes:
        return
    now = datetime.now(UTC)
    rows = [
        {
            "source_id": source.id,
            "connection_id": source.connection_id,
            "cms_id": change.cms_id,
            "op": change.op,
            "version": change.version,
            "document_json": _document_json(change),
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "last_error": None,
            "updated_at": now,
        }
        for change in changes
    ]
    db.execute(_statements(db.dialect.name).coalesce, rows)


def _document_json(change: Change) -> str:
    """What the worker needs to send the change (op, id and version have columns of their own).
    Spelled out rather than `dataclasses.asdict`, whose deep copy cost 2.5 % of an ack."""
    return json.dumps(
        {
            "title": change.title,
            "text": change.text,
            "url": change.url,
            "updated_at": change.updated_at,
            "metadata": change.metadata,
            "thin": change.thin,
            "fetch": asdict(change.fetch) if change.fetch is not None else None,
        },
        default=str,
    )


_REPLACED = ("connection_id", "op", "version", "document_json", "state", "attempts",
             "next_attempt_at", "last_error", "updated_at")  # fmt: skip


@dataclass(frozen=True)
class _Statements:
    record: Insert
    coalesce: Insert


@functools.cache
def _statements(dialect: str) -> _Statements:
    """The two writes of every webhook, built once per dialect: building an `INSERT ... ON
    CONFLICT` per request cost more CPU than running it."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    events = cast(Table, InboundEvent.__table__)
    documents = cast(Table, PendingDocument.__table__)
    record = insert(events).on_conflict_do_nothing(
        index_elements=[events.c.source_id, events.c.delivery_key]
    )
    upsert = insert(documents)
    coalesce = upsert.on_conflict_do_update(
        index_elements=[documents.c.source_id, documents.c.cms_id],
        set_={name: upsert.excluded[name] for name in _REPLACED},
        where=upsert.excluded.version > documents.c.version,
    )
    return _Statements(record.returning(events.c.id), coalesce)
