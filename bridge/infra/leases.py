"""Short leases on the rows a running task works on, renewed while the task runs.

A lease (a row's `lease_until` and `lease_token`) says: a task is working on this row, nobody
else start it. Polls, hook delivery batches and document writers take one. The task can run
long (a batch of POSTs to slow receivers, a read that waits for the key's budget), and its
process can die at any moment (SIGKILL, out of memory, a lost machine). A long fixed lease kept
the first safe and made the second slow: a killed worker's rows waited out the lease, a minute
for a poll, a minute per ten deliveries of a batch, two for a document. So a lease is short
(`LENGTH`), and each process renews the ones its tasks hold every sixth of it, from one daemon
thread (`_Keeper`, started by the first `hold`). A row a live task holds stays held however
long the task takes; a dead process's rows are free within `LENGTH`. A renewal may be late by
five sixths of `LENGTH` (25 s: a database busy for that long, a stalled process) before the
lease lapses; app servers' clocks must agree to well within that (NTP), since each stamps the
lease's end with its own.

The token, not the lease's end, says whose a lease is. A renewal moves the end; every release
and record compares the token, so a task whose lease lapsed never frees or overwrites the lease
another process took since. A renewal never revives a released lease (`lease_until` NULL).

A task about to do what only the lease's holder may do (POST a hook delivery, write a document
to ZappWay) asks `still_held` first: true while the lease's end, as last set by this process, is
more than a renewal's interval away (`surely_held`, no round trip), or else if the lease can be
renewed at that moment (it lapsed, but nobody took it). A process stalled past its renewals
whose rows another worker took starts nothing more on them; a renewal that finds a row
released or taken forgets it at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bridge.infra.models import Delivery, DocumentMapping, Watch

log = logging.getLogger(__name__)
LENGTH = timedelta(seconds=30)
RENEWALS_PER_LENGTH = 6  # a renewal every 5 s: one may come 25 s late before the lease lapses
# A task still holding a lease after this is wedged (every wait it makes has a timeout): its
# leases are no longer renewed, so another worker takes the rows over within `LENGTH`.
MAX_HOLD = timedelta(minutes=15)


def new_token() -> str:
    """A claim's mark on the rows it leases (16 hex characters, `lease_token`)."""
    return secrets.token_hex(8)


Leased = type[Watch] | type[Delivery] | type[DocumentMapping]  # tables with `lease_*` columns


@dataclass(frozen=True)
class _Held:
    token: str
    sessions: sessionmaker[Session]  # the database the row is in (tests run several)
    since: float  # time.monotonic() of the claim
    # time.monotonic() taken before the lease's end was last set (by the claim or a renewal):
    # the end is at least `length` after it
    confirmed: float


class HeldLeases:
    """The leases this process's running tasks hold on one table's rows (row id -> token)."""

    def __init__(self, model: Leased, length: timedelta = LENGTH) -> None:
        self.model = model
        self.length = length
        self._lock = threading.Lock()
        self._held: dict[int, _Held] = {}
        _KEEPER.register(self)

    def hold(
        self, sessions: sessionmaker[Session], ids: Iterable[int], token: str, claimed: float
    ) -> None:
        """Keep these rows' lease (taken with `token`) alive until `drop`. `claimed` is
        time.monotonic() read before the claim computed the lease's end: the end is at least
        `length` after it, which `surely_held` counts on."""
        entry = _Held(token, sessions, time.monotonic(), claimed)
        with self._lock:
            self._held.update(dict.fromkeys(ids, entry))
        _KEEPER.ensure_running()

    def drop(self, ids: Iterable[int], token: str) -> None:
        """Stop renewing these rows' lease (the task is done with them); an entry of another
        claim of the same row (after this one's lapsed) is left alone."""
        with self._lock:
            for row_id in ids:
                entry = self._held.get(row_id)
                if entry is not None and entry.token == token:
                    del self._held[row_id]

    def held(self, ids: Iterable[int]) -> dict[int, str]:
        """Of `ids`, those this process holds, with their lease's token."""
        with self._lock:
            return {i: self._held[i].token for i in ids if i in self._held}

    def held_with_prefix(self, prefix: str) -> dict[int, str]:
        """The rows this process holds under tokens starting with `prefix` (one kind of
        writer's), with their token."""
        with self._lock:
            return {i: e.token for i, e in self._held.items() if e.token.startswith(prefix)}

    def surely_held(self, row_id: int, token: str) -> bool:
        """Whether this claim's lease on the row has more than a renewal's interval left, as
        far as this process knows: the last time it set the lease's end, it was still its own.
        False once renewals have been late for most of the lease (a stalled process, a database
        away), when another worker may have taken the row."""
        with self._lock:
            entry = self._held.get(row_id)
        if entry is None or entry.token != token:
            return False
        margin = self.length.total_seconds() / RENEWALS_PER_LENGTH
        return time.monotonic() - entry.confirmed < self.length.total_seconds() - margin

    def renew(self) -> int:
        """Move the end of every held lease to `length` from now (one statement per claim);
        the rows renewed. A lease released, or taken by another token, is left as it is, and
        forgotten here."""
        clock = time.monotonic()
        claims: dict[tuple[sessionmaker[Session], str], list[int]] = {}
        with self._lock:
            for row_id, entry in list(self._held.items()):
                if clock - entry.since > MAX_HOLD.total_seconds():
                    log.warning("leases.wedged table=%s id=%s", self.model.__tablename__, row_id)
                    del self._held[row_id]
                    continue
                claims.setdefault((entry.sessions, entry.token), []).append(row_id)
        return sum(
            len(self._renew_claim(sessions, token, ids))
            for (sessions, token), ids in claims.items()
        )

    def still_held(self, row_id: int, token: str) -> bool:
        """Whether this claim may act on the row now: see `still_held_many`."""
        return row_id in self.still_held_many([row_id], token)

    def still_held_many(self, ids: Iterable[int], token: str) -> set[int]:
        """Of these rows, those this claim may act on now: `surely_held`, or else renewed by
        one statement made now (the lease lapsed, but nobody took it: a claim marks the row
        with its own token). None of the others when that cannot be told (the database is
        away)."""
        ids = list(ids)
        sure = {row_id for row_id in ids if self.surely_held(row_id, token)}
        with self._lock:
            unsure = [
                row_id
                for row_id in ids
                if row_id not in sure
                and (entry := self._held.get(row_id)) is not None
                and entry.token == token
            ]
            sessions = self._held[unsure[0]].sessions if unsure else None
        if sessions is None:
            return sure
        try:
            return sure | self._renew_claim(sessions, token, unsure)
        except SQLAlchemyError:
            return sure

    def _renew_claim(self, sessions: sessionmaker[Session], token: str, ids: list[int]) -> set[int]:
        """Renew one claim's leases on these rows; the rows renewed (see `_confirm`)."""
        started = time.monotonic()
        with sessions() as session:
            kept = set(
                session.scalars(
                    update(self.model)
                    .where(self.model.id.in_(ids), self.model.lease_token == token)
                    .where(self.model.lease_until.is_not(None))
                    # Read for each claim, not once per tick (the statements before this
                    # one may have waited for the database); `started` is earlier still.
                    .values(lease_until=datetime.now(UTC) + self.length)
                    .returning(self.model.id)
                )
            )
            session.commit()
        self._confirm(ids, token, kept, started)
        return kept

    def _confirm(self, ids: list[int], token: str, kept: set[int], started: float) -> None:
        """After a renewal: the rows `kept` are this claim's until `started` + `length`; the
        others were released or taken, and are forgotten."""
        with self._lock:
            for row_id in ids:
                entry = self._held.get(row_id)
                if entry is None or entry.token != token:
                    continue  # dropped meanwhile, or claimed again under another token
                if row_id in kept:
                    self._held[row_id] = replace(entry, confirmed=started)
                else:
                    del self._held[row_id]

    def _forget(self) -> None:
        """In a forked child: the parent's leases are the parent's (and its lock may have been
        held at the fork)."""
        self._lock = threading.Lock()
        self._held = {}


class _Keeper:
    """The process's one renewing thread, started on first use and again after a fork or if it
    ever died, so it runs wherever a lease is held: in workers and in web processes (a trigger
    poll reads in the request)."""

    def __init__(self) -> None:
        self._registries: weakref.WeakSet[HeldLeases] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # a registry came: its length may call for a shorter tick

    def register(self, registry: HeldLeases) -> None:
        with self._lock:
            self._registries.add(registry)
        self._wake.set()

    def ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()

    def after_fork_in_child(self) -> None:
        """The parent's thread and leases do not exist here; the child starts its own keeper
        on its first lease."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        for registry in list(self._registries):
            registry._forget()

    def _run(self) -> None:
        while True:
            try:
                with self._lock:
                    registries = list(self._registries)
                shortest = min((r.length for r in registries), default=LENGTH)
                if self._wake.wait(shortest.total_seconds() / RENEWALS_PER_LENGTH):
                    self._wake.clear()
                for registry in registries:
                    try:
                        registry.renew()
                    except Exception:  # the database is away: the next tick tries again
                        log.warning("leases.renew_failed table=%s", registry.model.__tablename__)
            except Exception:  # never end the thread: every lease in the process depends on it
                log.exception("leases.keeper_error")
                time.sleep(1)


_KEEPER = _Keeper()
os.register_at_fork(after_in_child=_KEEPER.after_fork_in_child)
