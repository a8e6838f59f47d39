"""Writing one received webhook: its event row, its documents coalesced, the sync claim.

The three writes are one unit: an event is recorded with its changes or not at all. How they reach
the database depends on what a round trip costs:

- SQLite is in-process, so they run as three statements in the caller's transaction, compiled
  once and run on the sqlite3 cursor (`bridge.infra.prepared`).
- On PostgreSQL each statement is a network round trip, and BEGIN and COMMIT are two more, so
  they run as one statement of data-modifying CTEs in autocommit: one round trip, atomic by
  itself (`bridge.infra.storage.autocommit` opens the connection that way), run on psycopg's
  own connection (`bridge.infra.prepared.first_row`). This halved the round trips of an
  acknowledgement.

Events without a delivery key (refused requests, keyless deliveries) are forgotten after
`BRIDGE_INBOUND_RETENTION_DAYS` (the worker's housekeeping); an accepted delivery's key is kept,
since it is what refuses a replay of that signed request. The documents' rows always stay: their
versions order every later change.

Both forms keep the same rules: a delivery key already received writes nothing; a document's
row is replaced only by a strictly newer version (a delete is a versioned tombstone); the sync
marker is claimed only by an accepted event with changes, and only while it is free.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    Boolean,
    Exists,
    Insert,
    Select,
    String,
    Table,
    Text,
    bindparam,
    column,
    exists,
    func,
    literal,
    null,
    select,
    true,
)
from sqlalchemy import Connection as DBConnection
from sqlalchemy import cast as sa_cast
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bridge.infra import prepared
from bridge.infra.models import Connection, InboundEvent, PendingDocument, Source
from bridge.infra.prepared import Prepared
from bridge.sync import marker
from bridge.sync.providers.mapping import Change
from bridge.sync.sources import InboundTarget


@dataclass(frozen=True)
class Written:
    event_id: int | None  # None: the delivery key was received before, nothing was written
    sync_claimed: bool  # this event reserved the connection's sync task: schedule it
    source_changed: bool = False  # a guarded write found the source changed: nothing written


def write_event(
    db: DBConnection,
    source: InboundTarget,
    *,
    key: str | None,
    status: str,
    reason: str | None,
    changes: list[Change],
    debounce_s: float,
    stale_after: timedelta = marker.STALE_MARKER,
    known_digest: str | None = None,
) -> Written:
    """Record the event and, when it is new, coalesce its changes and try to claim the sync.

    `changes` holds at most one change per document (`ingest` reduces them): on PostgreSQL one
    `INSERT ... ON CONFLICT` cannot touch a row twice. With `known_digest` (PostgreSQL only:
    `source` was remembered, not read for this request, see `sources.KnownSources`), nothing
    is written unless the source row is still exactly `source` under that token digest, active,
    its connection unrevoked; `Written.source_changed` says when it was not.
    """
    # The claim reads the marker inside the write, never a value read before verifying: a
    # sync that released the marker meanwhile (finding nothing due yet) would otherwise leave
    # this change to the minute sweep. On SQLite the write lock makes this exact; on
    # PostgreSQL only a release committed during the statement itself can slip past.
    try_claim = status == "accepted" and bool(changes)
    event = _event_row(source, key, status, reason, changes)
    documents = _document_rows(source, changes)
    window = marker.window(debounce_s, stale_after)
    if db.dialect.name == "postgresql":
        return _write_in_one_statement(
            db, source, event, documents, try_claim, window, known_digest
        )
    if known_digest is not None:
        raise ValueError("a guarded write is for PostgreSQL, where the lookup is a round trip")
    return _write_in_steps(db, source, event, documents, try_claim, window)


def _write_in_steps(
    db: DBConnection, source: InboundTarget, event: dict[str, Any],
    documents: list[dict[str, Any]], try_claim: bool, window: dict[str, datetime],
) -> Written:  # fmt: skip
    steps = _sqlite_steps()
    row = steps.record.run(db, event).fetchone()
    if row is None:
        return Written(None, False)
    if documents:
        steps.coalesce.run_many(db, documents)
    claimed = try_claim and bool(
        steps.claim.run(
            db, {"claimed_id": source.connection_id, "now": datetime.now(UTC), **window}
        ).rowcount
    )
    return Written(int(row[0]), claimed)


def _write_in_one_statement(
    db: DBConnection, source: InboundTarget, event: dict[str, Any],
    documents: list[dict[str, Any]], try_claim: bool, window: dict[str, datetime],
    known_digest: str | None,
) -> Written:  # fmt: skip
    guard = {} if known_digest is None else {
        "known_digest": known_digest,
        "known_provider": source.provider,
        "known_config_json": source.config_json,
        "known_secrets_ciphertext": source.secrets_ciphertext,
    }  # fmt: skip
    row = prepared.first_row(db, _one_statement(guarded=known_digest is not None), {
        **event,
        **window,
        **guard,
        "connection_id": source.connection_id,
        "now": datetime.now(UTC),
        "try_claim": try_claim,
        "cms_ids": [d["cms_id"] for d in documents],
        "ops": [d["op"] for d in documents],
        "versions": [d["version"] for d in documents],
        "document_jsons": [d["document_json"] for d in documents],
    })  # fmt: skip
    if row is None:  # pragma: no cover - a SELECT of scalars always answers one row
        raise RuntimeError("the event statement answered no row")
    event_id, claimed, *source_as_known = row
    if source_as_known == [False]:
        return Written(None, False, source_changed=True)
    if event_id is None:
        return Written(None, False)
    return Written(int(event_id), bool(claimed))


def _event_row(
    source: InboundTarget, key: str | None, status: str, reason: str | None,
    changes: list[Change],
) -> dict[str, Any]:  # fmt: skip
    """Events without a key never conflict (NULLs are distinct in the unique index)."""
    row = {
        "source_id": source.id,
        "delivery_key": key,
        "status": status,
        "reason": reason,
        "changes_json": json.dumps(
            [{"cms_id": c.cms_id, "op": c.op, "version": c.version} for c in changes]
        ),
        "received_at": datetime.now(UTC),
    }
    return {f"event_{name}": value for name, value in row.items()}


def _document_rows(source: InboundTarget, changes: list[Change]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
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
            "no_text": change.no_text,
        },
        default=str,
    )


# The statements are built once: building an `INSERT ... ON CONFLICT` per request cost more
# CPU than running it.
_EVENTS = cast(Table, InboundEvent.__table__)
_DOCUMENTS = cast(Table, PendingDocument.__table__)
_CONNECTIONS = cast(Table, Connection.__table__)
_SOURCES = cast(Table, Source.__table__)
_REPLACED = ("connection_id", "op", "version", "document_json", "state", "attempts",
             "next_attempt_at", "last_error", "updated_at")  # fmt: skip


def _record(insert: Any) -> Insert:
    """Insert the event unless its delivery key was received, returning its id.

    `ON CONFLICT DO NOTHING` rather than a savepoint: on SQLite a savepoint opened before any
    write starts the transaction itself, and releasing it commits, so the event would be durable
    even if the rest of the request failed, and the sender's retry would then be dropped as a
    duplicate with its change lost. Its parameters are named `event_*`, apart from the
    document columns they share a statement with on PostgreSQL.
    """
    fields = ("source_id", "delivery_key", "status", "reason", "changes_json", "received_at")
    values = {name: bindparam(f"event_{name}", type_=_EVENTS.c[name].type) for name in fields}
    record: Insert = (
        insert(_EVENTS)
        .values(values)
        .on_conflict_do_nothing(index_elements=[_EVENTS.c.source_id, _EVENTS.c.delivery_key])
    )
    return record.returning(_EVENTS.c.id)


def _record_if_unchanged() -> Insert:
    """PostgreSQL: `_record`, inserting only while `_source_as_known` holds."""
    fields = ("source_id", "delivery_key", "status", "reason", "changes_json", "received_at")
    values = select(*(
        sa_cast(bindparam(f"event_{name}", type_=_EVENTS.c[name].type), _EVENTS.c[name].type)
        for name in fields
    )).where(_source_as_known())  # fmt: skip
    record: Insert = (
        pg_insert(_EVENTS)
        .from_select(fields, values)
        .on_conflict_do_nothing(index_elements=[_EVENTS.c.source_id, _EVENTS.c.delivery_key])
    )
    return record.returning(_EVENTS.c.id)


def _source_as_known() -> Exists:
    """The source row is still the one remembered: same token digest, connection, provider,
    config and secrets, still active, and its connection not revoked."""
    return exists(
        select(_SOURCES.c.id)
        .join(_CONNECTIONS, _CONNECTIONS.c.id == _SOURCES.c.connection_id)
        .where(
            _SOURCES.c.id == bindparam("event_source_id", type_=String),
            _SOURCES.c.path_token_hash == bindparam("known_digest", type_=String),
            _SOURCES.c.connection_id == bindparam("connection_id", type_=String),
            _SOURCES.c.provider == bindparam("known_provider", type_=String),
            _SOURCES.c.config_json == bindparam("known_config_json", type_=Text),
            _SOURCES.c.secrets_ciphertext == bindparam("known_secrets_ciphertext", type_=Text),
            _SOURCES.c.state == "active",
            _CONNECTIONS.c.revoked_at.is_(None),
        )
    )


def _coalesce(upsert: Any) -> Insert:
    """Make an insert into pending documents replace a row only with a strictly newer version."""
    coalesce: Insert = upsert.on_conflict_do_update(
        index_elements=[_DOCUMENTS.c.source_id, _DOCUMENTS.c.cms_id],
        set_={name: upsert.excluded[name] for name in _REPLACED},
        where=upsert.excluded.version > _DOCUMENTS.c.version,
    )
    return coalesce


# Every column `_document_rows` gives, as a parameter of its own name (a compiled statement
# names its parameters up front; columns left out take their database default).
_DOCUMENT_VALUES = {
    name: bindparam(name, type_=_DOCUMENTS.c[name].type)
    for name in ("source_id", "cms_id", *_REPLACED)
}


@dataclass(frozen=True)
class _Steps:
    record: Prepared
    coalesce: Prepared
    claim: Prepared


@functools.cache
def _sqlite_steps() -> _Steps:
    """SQLite's three statements, compiled once and run on its cursor (`bridge.infra.prepared`:
    SQLAlchemy's per-call overhead was a fifth of the write)."""
    return _Steps(
        Prepared(_record(sqlite_insert)),
        Prepared(_coalesce(sqlite_insert(_DOCUMENTS).values(_DOCUMENT_VALUES))),
        Prepared(
            marker.claim_update("claimed_id").values(
                updated_at=bindparam("now", type_=_CONNECTIONS.c.updated_at.type)
            )
        ),
    )


@functools.cache
def _one_statement(guarded: bool = False) -> Select[Any]:
    """PostgreSQL: record, coalesce and claim as one statement (`guarded`: and say whether the
    source is as known, recording nothing when it is not; see `write_event`).

    The document rows arrive as parallel arrays (one per column) and are unnested server-side,
    so the statement has one shape whatever the number of changes. PostgreSQL runs every
    data-modifying CTE to completion whether or not the final SELECT reads it, so the coalesce
    and the claim are gated on the event CTE's RETURNING (a join, an EXISTS): they write only
    when the event was inserted.
    """
    record = _record_if_unchanged() if guarded else _record(pg_insert)
    event = record.returning(_EVENTS.c.source_id).cte("event")
    rows = (
        func.unnest(
            bindparam("cms_ids", type_=ARRAY(String)),
            bindparam("ops", type_=ARRAY(String)),
            bindparam("versions", type_=ARRAY(String)),
            bindparam("document_jsons", type_=ARRAY(Text)),
        )
        .table_valued(column("cms_id"), column("op"), column("version"), column("document_json"))
        .render_derived(name="change")
    )
    now = bindparam("now", type_=_DOCUMENTS.c.updated_at.type)
    columns = ("source_id", "connection_id", "cms_id", "op", "version", "document_json",
               "state", "attempts", "next_attempt_at", "last_error", "updated_at")  # fmt: skip
    values = select(
        event.c.source_id, bindparam("connection_id", type_=String), rows.c.cms_id, rows.c.op,
        rows.c.version, rows.c.document_json, literal("pending"), literal(0), now, null(), now,
    ).select_from(event.join(rows, true()))  # fmt: skip
    coalesce = _coalesce(pg_insert(_DOCUMENTS).from_select(columns, values)).cte("coalesce")
    claim = (
        marker.claim_update("connection_id")
        .where(bindparam("try_claim", type_=Boolean), exists(select(event.c.id)))
        .values(updated_at=now)
        .returning(_CONNECTIONS.c.id)
        .cte("claim")
    )
    answers = [
        select(event.c.id).scalar_subquery().label("event_id"),
        exists(select(claim.c.id)).label("claimed"),
    ]
    if guarded:
        answers.append(_source_as_known().label("source_as_known"))
    return select(*answers).add_cte(coalesce)
