"""Idempotency-Key handling: a retried request gets the stored answer, not a second upstream call.

The first request with a key claims it by inserting a row (a unique constraint decides between
concurrent retries, in any process); the others wait for the winner's answer and replay it.
Answers are kept 24 h. The same key with another body is refused (422). A transient failure
(429, 5xx, timeouts) releases the claim so the platform's retry can run the action again; a
deadline 504 does not (its run goes on as a job, and replays answer with that job's outcome).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bridge.infra.errors import ClientError
from bridge.infra.models import IdempotencyRecord

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyConflict(ClientError):
    """Raised when a key is reused with a different body (422) or is still running (409)."""

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: Any


def request_hash(action: str, payload: Any) -> str:
    canonical = json.dumps([action, payload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore:
    """Claims, replays and records idempotent requests for one connection."""

    def __init__(self, sessions: sessionmaker[Session], connection_id: str) -> None:
        self._sessions = sessions
        self._connection_id = connection_id

    def claim(self, key: str, digest: str, wait_s: float) -> StoredResponse | None:
        """Claim `key` (None: go ahead and run) or return the stored answer of an earlier run.

        Raises:
            IdempotencyConflict: other body (422), or the first run still going (409).
        """
        if not key or len(key) > MAX_KEY_LENGTH:
            raise IdempotencyConflict(
                422, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 characters"
            )
        if self._insert(key, digest):
            return None
        deadline = time.monotonic() + wait_s
        while True:
            record = self._load(key)
            if record is None:  # the first run failed transiently and released the key
                if self._insert(key, digest):
                    return None
                continue
            if record.request_hash != digest:
                raise IdempotencyConflict(
                    422, "idempotency_key_reused",
                    "This Idempotency-Key was used with a different request body",
                )  # fmt: skip
            if record.state == "done" and record.status_code is not None:
                return StoredResponse(
                    record.status_code, json.loads(record.response_json or "null")
                )
            if time.monotonic() > deadline:
                raise IdempotencyConflict(
                    409, "idempotency_in_progress",
                    "A request with this Idempotency-Key is still running; retry shortly",
                )  # fmt: skip
            time.sleep(0.05)

    def complete(self, key: str, status: int, body: Any) -> None:
        with self._sessions() as session:
            session.execute(
                update(IdempotencyRecord)
                .where(self._where(key))
                .values(state="done", status_code=status, response_json=json.dumps(body))
            )
            session.commit()

    def release(self, key: str) -> None:
        with self._sessions() as session:
            session.execute(
                delete(IdempotencyRecord).where(
                    self._where(key) & (IdempotencyRecord.state == "in_progress")
                )
            )
            session.commit()

    def _where(self, key: str) -> Any:
        return (IdempotencyRecord.connection_id == self._connection_id) & (
            IdempotencyRecord.key == key
        )

    def _insert(self, key: str, digest: str) -> bool:
        with self._sessions() as session:
            self._expire(session, key)
            session.add(
                IdempotencyRecord(connection_id=self._connection_id, key=key, request_hash=digest)
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return False
            return True

    def _expire(self, session: Session, key: str) -> None:
        cutoff = datetime.now(UTC) - TTL
        session.execute(
            delete(IdempotencyRecord).where(
                self._where(key) & (IdempotencyRecord.created_at < cutoff)
            )
        )

    def _load(self, key: str) -> IdempotencyRecord | None:
        with self._sessions() as session:
            return session.scalar(select(IdempotencyRecord).where(self._where(key)))


def purge_expired(session: Session) -> int:
    """Delete records older than the TTL (run by housekeeping)."""
    cutoff = datetime.now(UTC) - TTL
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
