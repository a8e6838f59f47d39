"""The external-id -> upstream-id document map, and upserts that update instead of duplicating.

The legacy upstream mints a new id on every upsert, so the bridge remembers, per connection and
datastore, which upstream document each external id became, plus a hash of what was sent (an
unchanged document costs no upstream call). Concurrent writers of one external id are serialised
by a short lease on its map row (an UPDATE that only one caller can win), never by a database
lock held across the upstream call, which on SQLite would stall every other writer.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bridge.models import DocumentMapping
from bridge.upstream_errors import UpstreamForbidden, UpstreamNotFound
from bridge.zappway import ZappWay

LEASE = timedelta(seconds=120)
MAX_BATCH_BYTES = 900_000  # below the upstream's 1 MB JSON body cap


class DocumentBusy(RuntimeError):
    """Raised when another writer holds a document's lease for longer than we may wait."""


@dataclass(frozen=True)
class UpsertOutcome:
    id: str | None
    upstream_id: str
    status: str  # created | updated | unchanged


def content_hash(document: dict[str, Any]) -> str:
    canonical = {k: document.get(k) for k in ("text", "title", "url", "metadata")}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


class DocumentMap:
    """Per-connection access to the map; each method commits its own short transaction."""

    def __init__(self, sessions: sessionmaker[Session], connection_id: str) -> None:
        self._sessions = sessions
        self._connection_id = connection_id

    def _key(self, datastore_id: str, external_id: str) -> Any:
        return (
            (DocumentMapping.connection_id == self._connection_id)
            & (DocumentMapping.datastore_id == datastore_id)
            & (DocumentMapping.external_id == external_id)
        )

    def get(self, datastore_id: str, external_id: str) -> DocumentMapping | None:
        with self._sessions() as session:
            return session.scalar(
                select(DocumentMapping).where(self._key(datastore_id, external_id))
            )

    @contextmanager
    def leased(
        self, datastore_id: str, external_ids: Sequence[str], wait_s: float = 30.0
    ) -> Iterator[dict[str, DocumentMapping]]:
        """Hold the leases of several external ids (sorted, so writers never deadlock)."""
        token = secrets.token_hex(8)
        held: list[str] = []
        try:
            for external_id in sorted(set(external_ids)):
                self._claim(datastore_id, external_id, token, wait_s)
                held.append(external_id)
            with self._sessions() as session:
                rows = session.scalars(
                    select(DocumentMapping).where(
                        (DocumentMapping.connection_id == self._connection_id)
                        & (DocumentMapping.datastore_id == datastore_id)
                        & DocumentMapping.external_id.in_(held)
                    )
                )
                yield {row.external_id: row for row in rows}
        finally:
            self._release(datastore_id, held, token)

    def _claim(self, datastore_id: str, external_id: str, token: str, wait_s: float) -> None:
        self._ensure_row(datastore_id, external_id)
        deadline = time.monotonic() + wait_s
        while True:
            now = datetime.now(UTC)
            with self._sessions() as session:
                won = session.execute(  # type: ignore[attr-defined]  # DML results have rowcount
                    update(DocumentMapping)
                    .where(self._key(datastore_id, external_id))
                    .where(
                        DocumentMapping.locked_until.is_(None)
                        | (DocumentMapping.locked_until < now)
                    )
                    .values(lock_token=token, locked_until=now + LEASE)
                ).rowcount
                session.commit()
            if won:
                return
            if time.monotonic() > deadline:
                raise DocumentBusy(f"document {external_id!r} is being written by another request")
            time.sleep(0.05)

    def _ensure_row(self, datastore_id: str, external_id: str) -> None:
        with self._sessions() as session:
            if session.scalar(
                select(DocumentMapping.id).where(self._key(datastore_id, external_id))
            ):
                return
            session.add(
                DocumentMapping(
                    connection_id=self._connection_id,
                    datastore_id=datastore_id,
                    external_id=external_id,
                )
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # a concurrent writer created it first: fine

    def _release(self, datastore_id: str, external_ids: list[str], token: str) -> None:
        if not external_ids:
            return
        with self._sessions() as session:
            session.execute(
                update(DocumentMapping)
                .where(
                    (DocumentMapping.connection_id == self._connection_id)
                    & (DocumentMapping.datastore_id == datastore_id)
                    & DocumentMapping.external_id.in_(external_ids)
                    & (DocumentMapping.lock_token == token)
                )
                .values(lock_token=None, locked_until=None)
            )
            session.commit()

    def record(self, datastore_id: str, external_id: str, upstream_id: str, digest: str) -> None:
        with self._sessions() as session:
            session.execute(
                update(DocumentMapping)
                .where(self._key(datastore_id, external_id))
                .values(upstream_id=upstream_id, content_hash=digest, updated_at=datetime.now(UTC))
            )
            session.commit()

    def forget(self, datastore_id: str, external_id: str) -> None:
        with self._sessions() as session:
            session.execute(delete(DocumentMapping).where(self._key(datastore_id, external_id)))
            session.commit()

    def forget_upstream(self, datastore_id: str, upstream_id: str) -> None:
        """Unmap an upstream document deleted by its own id, so its external id is created anew."""
        with self._sessions() as session:
            session.execute(
                update(DocumentMapping)
                .where(
                    (DocumentMapping.connection_id == self._connection_id)
                    & (DocumentMapping.datastore_id == datastore_id)
                    & (DocumentMapping.upstream_id == upstream_id)
                )
                .values(upstream_id=None, content_hash=None)
            )
            session.commit()


def upsert_documents(
    zappway: ZappWay, documents_map: DocumentMap, datastore_id: str, documents: list[dict[str, Any]]
) -> list[UpsertOutcome]:
    """Create or replace documents; results in input order.

    Documents without an id are always created. With an id: unchanged content is skipped,
    known ids are replaced (documented: upsert by id; legacy: the update route, re-creating
    the document if it was deleted upstream), new ids are created and remembered.
    """
    anonymous = [doc for doc in documents if not doc.get("id")]
    keyed = {doc["id"]: doc for doc in documents if doc.get("id")}  # last one wins
    results: dict[str, UpsertOutcome] = {}
    with documents_map.leased(datastore_id, list(keyed)) as rows:
        to_send: list[dict[str, Any]] = []
        for external_id, doc in keyed.items():
            row = rows.get(external_id)
            digest = content_hash(doc)
            if row and row.upstream_id and row.content_hash == digest:
                results[external_id] = UpsertOutcome(external_id, row.upstream_id, "unchanged")
            elif row and row.upstream_id and zappway.legacy:
                upstream_id = _replace_legacy(zappway, datastore_id, row.upstream_id, doc)
                documents_map.record(datastore_id, external_id, upstream_id, digest)
                results[external_id] = UpsertOutcome(external_id, upstream_id, "updated")
            else:
                to_send.append(doc)
        for doc, upstream_id in zip(
            to_send, _send_batches(zappway, datastore_id, to_send), strict=True
        ):
            row = rows.get(doc["id"])
            status = "updated" if row and row.upstream_id else "created"
            documents_map.record(datastore_id, doc["id"], upstream_id, content_hash(doc))
            results[doc["id"]] = UpsertOutcome(doc["id"], upstream_id, status)
    created = _send_batches(zappway, datastore_id, anonymous)
    anonymous_results = iter(UpsertOutcome(None, uid, "created") for uid in created)
    return [results[doc["id"]] if doc.get("id") else next(anonymous_results) for doc in documents]


def _replace_legacy(
    zappway: ZappWay, datastore_id: str, upstream_id: str, doc: dict[str, Any]
) -> str:
    try:
        return zappway.update_document(datastore_id, upstream_id, doc)
    except (UpstreamNotFound, UpstreamForbidden):
        return zappway.upsert_documents(datastore_id, [doc])[0]  # deleted upstream: re-create


def _send_batches(zappway: ZappWay, datastore_id: str, docs: list[dict[str, Any]]) -> list[str]:
    """Upsert in as few calls as the 1 MB body cap allows; ids in input order."""
    ids: list[str] = []
    batch: list[dict[str, Any]] = []
    size = 0
    for doc in docs:
        doc_size = len(json.dumps(doc, default=str))
        if batch and size + doc_size > MAX_BATCH_BYTES:
            ids.extend(zappway.upsert_documents(datastore_id, batch))
            batch, size = [], 0
        batch.append(doc)
        size += doc_size
    if batch:
        ids.extend(zappway.upsert_documents(datastore_id, batch))
    return ids


def delete_document(
    zappway: ZappWay, documents_map: DocumentMap, datastore_id: str, external_id: str
) -> tuple[str | None, bool]:
    """Delete by external id; returns (upstream id, whether upstream had it)."""
    with documents_map.leased(datastore_id, [external_id]) as rows:
        row = rows.get(external_id)
        upstream_id = row.upstream_id if row else None
        existed = zappway.delete_document(upstream_id) if upstream_id else False
        documents_map.forget(datastore_id, external_id)
    return upstream_id, existed
