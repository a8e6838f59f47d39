"""Short leases on the rows a running task works on, renewed while the task runs.

A lease (a row's `lease_until` and `lease_token`) says: a task is working on this row, nobody
else start it. Polls and hook deliveries take one. The task can run long (a batch of POSTs to
slow receivers, a read that waits for the key's budget), and its process can die at any moment
(SIGKILL, out of memory, a lost machine). A long fixed lease kept the first safe and made the
second slow: a killed worker's rows waited out the lease, a minute for a poll and a minute per
ten deliveries of a batch. So a lease is short (`LENGTH`), and each process renews the ones its
tasks hold every quarter of it, from one daemon thread (`_Keeper`, started by the first `hold`).
A row a live task holds stays held however long the task takes; a dead process's rows are
free within `LENGTH`.

The token, not the lease's end, says whose a lease is. A renewal moves the end; every release
and record compares the token, so a task whose lease lapsed never frees or overwrites the lease
another process took since. A renewal never revives a released lease (`lease_until` NULL).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from bridge.infra.models import Delivery, Watch

log = logging.getLogger(__name__)
LENGTH = timedelta(seconds=20)
# A task still holding a lease after this is wedged (every wait it makes has a timeout): its
# leases are no longer renewed, so another worker takes the rows over within `LENGTH`.
MAX_HOLD = timedelta(hours=1)


def new_token() -> str:
    """A claim's mark on the rows it leases (16 hex characters, `lease_token`)."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class _Held:
    token: str
    sessions: sessionmaker[Session]  # the database the row is in (tests run several)
    since: float  # time.monotonic() of the claim


class HeldLeases:
    """The leases this process's running tasks hold on one table's rows (row id -> token)."""

    def __init__(self, model: type[Watch] | type[Delivery], length: timedelta = LENGTH) -> None:
        self.model = model
        self.length = length
        self._lock = threading.Lock()
        self._held: dict[int, _Held] = {}
        _KEEPER.register(self)

    def hold(self, sessions: sessionmaker[Session], ids: Iterable[int], token: str) -> None:
        """Keep these rows' lease (taken with `token`) alive until `drop`."""
        entry = _Held(token, sessions, time.monotonic())
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

    def renew(self) -> int:
        """Move the end of every held lease to `length` from now (one statement per claim);
        the rows renewed. A lease released, or taken by another token, is left as it is."""
        now, clock = datetime.now(UTC), time.monotonic()
        claims: dict[tuple[sessionmaker[Session], str], list[int]] = {}
        with self._lock:
            for row_id, entry in list(self._held.items()):
                if clock - entry.since > MAX_HOLD.total_seconds():
                    log.warning("leases.wedged table=%s id=%s", self.model.__tablename__, row_id)
                    del self._held[row_id]
                    continue
                claims.setdefault((entry.sessions, entry.token), []).append(row_id)
        renewed = 0
        for (sessions, token), ids in claims.items():
            with sessions() as session:
                renewed += session.execute(  # type: ignore[attr-defined]  # DML has rowcount
                    update(self.model)
                    .where(self.model.id.in_(ids), self.model.lease_token == token)
                    .where(self.model.lease_until.is_not(None))
                    .values(lease_until=now + self.length)
                ).rowcount
                session.commit()
        return renewed


class _Keeper:
    """The process's one renewing thread. Started on first use and again after a fork (gunicorn
    forks its workers), so it runs wherever a lease is held: in workers and in web processes
    (a trigger poll reads in the request)."""

    def __init__(self) -> None:
        self._registries: weakref.WeakSet[HeldLeases] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._wake = threading.Event()  # a registry came: its length may call for a shorter tick

    def register(self, registry: HeldLeases) -> None:
        self._registries.add(registry)
        self._wake.set()

    def ensure_running(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            threading.Thread(target=self._run, name="lease-keeper", daemon=True).start()
            self._pid = os.getpid()

    def _run(self) -> None:
        while True:
            registries = list(self._registries)
            every = min((r.length for r in registries), default=LENGTH).total_seconds() / 4
            if self._wake.wait(every):
                self._wake.clear()
            for registry in registries:
                try:
                    registry.renew()
                except Exception:  # the database is away: the next tick tries again
                    log.warning("leases.renew_failed table=%s", registry.model.__tablename__)


_KEEPER = _Keeper()
