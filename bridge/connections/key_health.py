"""What ZappWay's answers say about a connection's stored key, kept on the connection.

Every call with a connection's key reports to a `KeyRecord`: a rejection (401) marks the key
`rejected` with the time, which the console and `/v1/me` show; a later success (the key works
again: ZappWay restored it, or the 401 was ZappWay's mistake) marks it `valid`. Either way
the record follows what ZappWay last said, not only what a rotation or `?verify=1` said.

Background polls do not keep knocking with a rejected key: a watch whose connection's key was
rejected less than `RECHECK_AFTER_S` ago is not polled (`KeyOnHold`), and after that the next
poll is the probe. Actions and syncs still call: a person is waiting for the first, and the
second has its own backoff; a success from any of them lifts the hold at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, update
from sqlalchemy.exc import SQLAlchemyError

from bridge.infra.models import Connection
from bridge.runtime import Runtime
from bridge.upstream.errors import UpstreamAuthError

log = logging.getLogger(__name__)

REJECTED, VALID = "rejected", "valid"
RECHECK_AFTER_S = 300  # a poll's probe of a rejected key: 1 call per 5 minutes, not 4 a minute

_CONNECTIONS = cast(Table, Connection.__table__)


class KeyOnHold(UpstreamAuthError):
    """Raised instead of polling with a key ZappWay rejected moments ago (nothing was sent)."""

    code = "upstream_key_on_hold"

    def __init__(self, rejected_at: datetime) -> None:
        retry = rejected_at + timedelta(seconds=RECHECK_AFTER_S)
        super().__init__(
            f"ZappWay rejected the stored API key at {rejected_at:%H:%M:%S} UTC; the bridge "
            f"tries it again after {retry:%H:%M:%S} UTC or at once when the key is rotated"
        )


def hold_for(key_status: str, checked_at: datetime | None, now: datetime) -> None:
    """Raise `KeyOnHold` when the key was rejected less than `RECHECK_AFTER_S` ago."""
    if key_status != REJECTED or checked_at is None:
        return
    if now - checked_at < timedelta(seconds=RECHECK_AFTER_S):
        raise KeyOnHold(checked_at)


class KeyRecord:
    """One client's reports about one connection's key (see the module's docstring).

    Writes only when the verdict changes what the row says: a success with a key the row
    already calls valid costs nothing, so the hot path pays one comparison per call.
    """

    def __init__(self, runtime: Runtime, connection_id: str, key_status: str) -> None:
        self._runtime = runtime
        self._connection_id = connection_id
        self._doubted = key_status == REJECTED
        self._reported = False

    def accepted(self) -> None:
        if not self._doubted:
            return
        self._doubted = False
        self._write(VALID, _CONNECTIONS.c.key_status == REJECTED)
        log.info("connections.key_accepted connection=%s", self._connection_id)

    def rejected(self) -> None:
        if self._reported:  # a call and the `/me` that told a 403 apart: one write
            return
        self._doubted = self._reported = True
        self._write(REJECTED, None)

    def _write(self, status: str, condition: object) -> None:
        statement = (
            update(_CONNECTIONS)
            .where(_CONNECTIONS.c.id == self._connection_id)
            .values(key_status=status, key_checked_at=datetime.now(UTC))
        )
        if condition is not None:
            statement = statement.where(condition)  # type: ignore[arg-type]
        try:
            with self._runtime.engine.begin() as db:
                db.execute(statement)
        except SQLAlchemyError as exc:  # the call's own answer matters more than the record
            log.warning(
                "connections.key_record_failed connection=%s status=%s error=%s",
                self._connection_id, status, type(exc).__name__,
            )  # fmt: skip
