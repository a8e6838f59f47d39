"""The external-id -> upstream-id document map: every SQL statement about it.

Per connection and datastore, which upstream document each external id became, plus a hash of
what was sent (an unchanged document costs no upstream call), and whether a create was sent
whose answer has not been seen (`unconfirmed_at`, `sent_name`). Concurrent writers of one external
id are serialised by a lease on its map row (an UPDATE that only one caller can win), never by a
database lock held across the upstream call, which on SQLite would stall every other writer.
The lease is short and renewed while its writer runs (`bridge.infra.leases`): a process killed
in the middle of an upsert leaves its documents busy for `LEASE` at most, and a writer slower
than that (a batch waiting for its key's budget) keeps them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bridge.infra import leases
from bridge.infra.errors import Conflict
from bridge.infra.models import DocumentMapping

LEASE = leases.LENGTH
LEASE_S = int(LEASE.total_seconds())
WAIT_S = 10.0  # for another writer's lease, before answering 409 (a request must not hang)
HELD = leases.HeldLeases(DocumentMapping)  # this process's writers' leases, renewed
IN_LIMIT = 500  # ids per batched statement (well under every driver's parameter cap)


# The length of `DocumentMapping.sent_name`: a longer name sent is kept as its start, and a
# lookup by it then matches names that start so (`ZappWay.find_documents(name_is_start=True)`).
SENT_NAME_MAX = 300


class DocumentBusy(Conflict):
    """Raised when another writer holds a document's lease for longer than we may wait."""

    code = "document_busy"
    retry_after = 2

    def __init__(self, message: str | None = None, retry_after_s: float | None = None) -> None:
        """`retry_after_s`: when the holder's lease ends (it is renewed while it writes)."""
        super().__init__(message)
        self.wait_s = self.retry_after if retry_after_s is None else retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, min(math.ceil(self.wait_s), LEASE_S)))}


class DocumentMap:
    """Per-connection access to the map; each method commits its own short transaction."""

    def __init__(
        self, sessions: sessionmaker[Session], connection_id: str, lease_prefix: str = ""
    ) -> None:
        """`lease_prefix` marks this writer's leases (the CMS sync uses `sync-`, so a worker
        handing back a sync run it cannot finish frees that run's leases)."""
        self._sessions = sessions
        self._connection_id = connection_id
        self._lease_prefix = lease_prefix

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
        self, datastore_id: str, external_ids: Sequence[str], wait_s: float | None = None
    ) -> Iterator[dict[str, DocumentMapping]]:
        """Hold the leases of several external ids (sorted, so writers never deadlock),
        waiting `wait_s` (`WAIT_S`) at most for each one another writer holds."""
        wait_s = WAIT_S if wait_s is None else wait_s
        token = self._lease_prefix + leases.new_token()
        wanted = sorted(set(external_ids))
        held: dict[str, int] = {}  # external id -> map row id
        try:
            self._ensure_rows(datastore_id, wanted)
            held = self._claim_all(datastore_id, wanted, token)
            for external_id in wanted if not held else ():
                held[external_id] = self._claim(datastore_id, external_id, token, wait_s)
            # Read, then close the session: the caller's upstream call may take a minute, and
            # must not keep a pooled connection (idle in a transaction) for all that time.
            with self._sessions() as session:
                rows = {
                    row.external_id: row
                    for row in session.scalars(
                        select(DocumentMapping).where(DocumentMapping.id.in_(held.values()))
                    )
                }
            yield rows
        finally:
            HELD.drop(held.values(), token)
            self._release(list(held.values()), token)

    def ensure_held(self, rows: Iterable[DocumentMapping]) -> None:
        """Check, as a call about these rows is about to leave for ZappWay, that this writer
        still holds each row's lease (the rows `leased` yielded, which carry its token).

        Raises:
            DocumentBusy: a lease lapsed and another writer took it (this process stalled past
                its renewals), or it cannot be confirmed (the database is away).
        """
        by_token: dict[str, list[DocumentMapping]] = {}
        for row in rows:
            by_token.setdefault(row.lease_token or "", []).append(row)
        for token, claimed in by_token.items():
            held = HELD.still_held_many([row.id for row in claimed], token)
            for row in claimed:
                if row.id not in held:
                    raise DocumentBusy(
                        f"document {row.external_id!r} may be written by another request"
                    )

    def _claim_all(self, datastore_id: str, external_ids: list[str], token: str) -> dict[str, int]:
        """Take every lease in one statement, or none (a batch's fast path; rows exist)."""
        if len(external_ids) < 2 or len(external_ids) > IN_LIMIT:
            return {}
        claimed = time.monotonic()
        now = datetime.now(UTC)
        with self._sessions() as session:
            won = session.execute(
                update(DocumentMapping)
                .where(
                    (DocumentMapping.connection_id == self._connection_id)
                    & (DocumentMapping.datastore_id == datastore_id)
                    & DocumentMapping.external_id.in_(external_ids)
                )
                .where(DocumentMapping.lease_until.is_(None) | (DocumentMapping.lease_until < now))
                .values(lease_token=token, lease_until=now + LEASE)
                .returning(DocumentMapping.external_id, DocumentMapping.id)
            ).all()
            if len(won) != len(external_ids):
                session.rollback()  # someone holds one of them: claim one by one, in order
                return {}
            session.commit()
        HELD.hold(self._sessions, [row_id for _e, row_id in won], token, claimed)
        return {external_id: row_id for external_id, row_id in won}

    def _claim(self, datastore_id: str, external_id: str, token: str, wait_s: float) -> int:
        """Take one lease, waiting up to `wait_s` for its holder; the map row's id."""
        self._ensure_row(datastore_id, external_id)
        deadline = time.monotonic() + wait_s
        while True:
            claimed = time.monotonic()
            now = datetime.now(UTC)
            with self._sessions() as session:
                won = session.scalar(
                    update(DocumentMapping)
                    .where(self._key(datastore_id, external_id))
                    .where(
                        DocumentMapping.lease_until.is_(None) | (DocumentMapping.lease_until < now)
                    )
                    .values(lease_token=token, lease_until=now + LEASE)
                    .returning(DocumentMapping.id)
                )
                session.commit()
            if won is not None:
                HELD.hold(self._sessions, [won], token, claimed)
                return int(won)
            if time.monotonic() > deadline:
                raise DocumentBusy(
                    f"document {external_id!r} is being written by another request",
                    self._lease_left_s(datastore_id, external_id),
                )
            time.sleep(0.05)

    def _lease_left_s(self, datastore_id: str, external_id: str) -> float | None:
        """Seconds until the holder's lease on the document ends, if it is held."""
        row = self.get(datastore_id, external_id)
        if row is None or row.lease_until is None:
            return None
        return (row.lease_until - datetime.now(UTC)).total_seconds()

    def _ensure_rows(self, datastore_id: str, external_ids: list[str]) -> None:
        """Create the missing map rows of a batch in one transaction (one by one on a race)."""
        if len(external_ids) < 2 or len(external_ids) > IN_LIMIT:
            return
        with self._sessions() as session:
            existing = set(
                session.scalars(
                    select(DocumentMapping.external_id).where(
                        (DocumentMapping.connection_id == self._connection_id)
                        & (DocumentMapping.datastore_id == datastore_id)
                        & DocumentMapping.external_id.in_(external_ids)
                    )
                )
            )
            missing = [e for e in external_ids if e not in existing]
            if not missing:
                return
            session.add_all(
                DocumentMapping(
                    connection_id=self._connection_id, datastore_id=datastore_id, external_id=e
                )
                for e in missing
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # a concurrent writer created one first: `_claim` copes

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

    def _release(self, row_ids: list[int], token: str) -> None:
        if not row_ids:
            return
        with self._sessions() as session:
            session.execute(
                update(DocumentMapping)
                .where(DocumentMapping.id.in_(row_ids), DocumentMapping.lease_token == token)
                .values(lease_token=None, lease_until=None)
            )
            session.commit()

    def mark_unconfirmed(self, datastore_id: str, sent: list[tuple[str, str | None]]) -> None:
        """Record, before a create is sent, that ZappWay may soon hold a copy of each
        (external id, name sent) the map cannot point at yet: if the answer is lost (reset,
        timeout, a killed worker), a later delete or legacy re-create looks the copy up
        instead of trusting an empty upstream id. Committed before the call on purpose."""
        if not sent:
            return
        values = {"unconfirmed_at": datetime.now(UTC), "sent_name": bindparam("b_name")}
        params = [
            {"b_external_id": e, "b_name": (n or "")[:SENT_NAME_MAX] or None} for e, n in sent
        ]
        self._update_each(datastore_id, values, params)

    def upstream_ids_of_others(self, datastore_id: str, external_id: str) -> set[str]:
        """Upstream ids the map gives to other external ids of the datastore (a lookup by
        name must never adopt or delete a document that belongs to another one)."""
        with self._sessions() as session:
            return set(
                session.scalars(
                    select(DocumentMapping.upstream_id)
                    .where(DocumentMapping.connection_id == self._connection_id)
                    .where(DocumentMapping.datastore_id == datastore_id)
                    .where(DocumentMapping.external_id != external_id)
                    .where(DocumentMapping.upstream_id.is_not(None))
                )
            )

    def record(self, datastore_id: str, external_id: str, upstream_id: str, digest: str) -> None:
        with self._sessions() as session:
            session.execute(
                update(DocumentMapping)
                .where(self._key(datastore_id, external_id))
                .values(
                    upstream_id=upstream_id,
                    content_hash=digest,
                    updated_at=datetime.now(UTC),
                    unconfirmed_at=None,
                    sent_name=None,
                )
            )
            session.commit()

    def record_many(self, datastore_id: str, results: list[tuple[str, str, str]]) -> None:
        """Record (external id, upstream id, content hash) for a whole batch in one commit."""
        if not results:
            return
        values = {
            "upstream_id": bindparam("b_upstream_id"),
            "content_hash": bindparam("b_hash"),
            "updated_at": datetime.now(UTC),
            "unconfirmed_at": None,
            "sent_name": None,
        }
        params = [{"b_external_id": e, "b_upstream_id": u, "b_hash": h} for e, u, h in results]
        self._update_each(datastore_id, values, params)

    def _update_each(
        self, datastore_id: str, values: dict[str, Any], params: list[dict[str, Any]]
    ) -> None:
        """One executemany UPDATE of the datastore's rows, one per params entry (its
        `b_external_id`), in one commit: a batch costs one round trip, not one per document."""
        table = cast(Table, DocumentMapping.__table__)
        statement = (
            update(table)
            .where(table.c.connection_id == self._connection_id)
            .where(table.c.datastore_id == datastore_id)
            .where(table.c.external_id == bindparam("b_external_id"))
            .values(values)
        )
        with self._sessions() as session:
            session.connection().execute(statement, params)
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


def release_own_leases(sessions: sessionmaker[Session], connection_id: str, prefix: str) -> int:
    """Free the connection's leases this process holds under tokens starting with `prefix`
    (a process handing back a run it cannot finish); returns how many. A lease of the same
    rows another claim took since is left to it."""
    freed = 0
    by_token: dict[str, list[int]] = {}
    for row_id, token in HELD.held_with_prefix(prefix).items():
        by_token.setdefault(token, []).append(row_id)
    for token, ids in by_token.items():
        with sessions() as session:
            released = list(
                session.scalars(
                    update(DocumentMapping)
                    .where(DocumentMapping.id.in_(ids), DocumentMapping.lease_token == token)
                    .where(DocumentMapping.connection_id == connection_id)
                    .values(lease_token=None, lease_until=None)
                    .returning(DocumentMapping.id)
                )
            )
            session.commit()
        HELD.drop(released, token)
        freed += len(released)
    return freed
