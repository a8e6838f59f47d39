"""Receiving one CMS webhook: verify, parse, map, store durably, acknowledge. No upstream call.

The recipe runs in the request, in one transaction: the verifier chosen by the source (never by
sniffing headers) checks the raw bytes; a repeated delivery id is acknowledged and dropped; each
mapped change is coalesced into its document's row, where only a newer version replaces what is
there (a delete is a versioned tombstone); the connection's sync is scheduled once per debounce.
Everything slow (fetching thin payloads, calling ZappWay) happens later in the worker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bridge.crypto import SecretBox
from bridge.inbound.errors import MappingError
from bridge.inbound.mapping import Change, delivery_key, map_event
from bridge.inbound.providers import PROVIDERS
from bridge.inbound.verify import VerificationError, verify
from bridge.models import InboundEvent, PendingDocument, Source
from bridge.source_config import resolve
from bridge.sources import active_secrets
from bridge.syncer import claim_sync


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
    session: Session,
    box: SecretBox,
    source: Source,
    *,
    raw_body: bytes,
    headers: Mapping[str, str],
    method: str,
    path: str,
    debounce_s: float,
) -> IngestResult:
    """Run the recipe for one request; the caller commits.

    Raises:
        IngestRejected: verification or parsing failed (a rejected event is recorded).
    """
    provider, config = resolve(PROVIDERS[source.provider], json.loads(source.config_json))
    now = time.time()
    try:
        verify(provider, active_secrets(source, box, datetime.now(UTC)), raw_body, headers,
               method=method, path=path, now=now, config=config)  # fmt: skip
        payload = json.loads(raw_body)
    except VerificationError as exc:
        _record(session, source, None, "rejected", exc.reason, [])
        raise IngestRejected(exc.status, exc.reason) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        _record(session, source, None, "rejected", "malformed-json", [])
        raise IngestRejected(400, "malformed-json") from exc
    try:
        changes = map_event(provider, payload, headers, config, received_at=now)
    except MappingError as exc:
        _record(session, source, None, "unmappable", exc.reason, [])
        raise IngestRejected(422, exc.reason) from exc
    key = delivery_key(provider, payload, headers, config)
    event = _record_unique(session, source, key, changes)
    if event is None:
        return IngestResult("duplicate", None, 0, False)
    for change in changes:
        _coalesce(session, source, change)
    schedule = bool(changes) and claim_sync(session, source.connection_id, debounce_s)
    return IngestResult("accepted" if changes else "ignored", event.id, len(changes), schedule)


def _record(
    session: Session, source: Source, key: str | None, status: str, reason: str | None,
    changes: list[Change],
) -> InboundEvent:  # fmt: skip
    event = InboundEvent(
        source_id=source.id,
        delivery_key=key,
        status=status,
        reason=reason,
        changes_json=json.dumps(
            [{"cms_id": c.cms_id, "op": c.op, "version": c.version} for c in changes]
        ),
    )
    session.add(event)
    session.flush()
    return event


def _record_unique(
    session: Session, source: Source, key: str | None, changes: list[Change]
) -> InboundEvent | None:
    """Record an accepted event; None when its delivery id was already received."""
    if key is None:
        return _record(session, source, None, "accepted", None, changes)
    savepoint = session.begin_nested()
    try:
        event = _record(session, source, key, "accepted", None, changes)
        savepoint.commit()
    except IntegrityError:
        savepoint.rollback()
        return None
    return event


def _coalesce(session: Session, source: Source, change: Change) -> None:
    """Upsert the document's row, replacing it only with a strictly newer version."""
    document = {k: v for k, v in asdict(change).items() if k not in ("op", "cms_id", "version")}
    values: dict[str, Any] = {
        "source_id": source.id,
        "connection_id": source.connection_id,
        "cms_id": change.cms_id,
        "op": change.op,
        "version": change.version,
        "document_json": json.dumps(document, default=str),
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": datetime.now(UTC),
        "last_error": None,
        "updated_at": datetime.now(UTC),
    }
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(PendingDocument).values(**values)
    replace = {k: statement.excluded[k] for k in values if k not in ("source_id", "cms_id")}
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["source_id", "cms_id"],
            set_=replace,
            where=statement.excluded.version > PendingDocument.version,
        )
    )
