"""Database tables, declared once with SQLAlchemy 2 typed mappings.

Secret columns hold ciphertext (`*_ciphertext`) or digests (`*_hash`) only; plaintext never
reaches this layer. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base; Alembic reads `Base.metadata`."""


class Connection(Base):
    """A user's ZappWay API key, wrapped in a bridge credential they can revoke."""

    __tablename__ = "connections"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(20))
    api_key_ciphertext: Mapped[str] = mapped_column(Text)
    api_key_last4: Mapped[str] = mapped_column(String(4))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    token_last4: Mapped[str] = mapped_column(String(4))
    upstream_org_id: Mapped[str | None] = mapped_column(String(100))
    upstream_org_name: Mapped[str | None] = mapped_column(String(200))
    key_status: Mapped[str] = mapped_column(String(20), default="valid")
    key_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signing_secret_ciphertext: Mapped[str | None] = mapped_column(Text)

    def __repr__(self) -> str:
        return f"Connection(id={self.id!r}, label={self.label!r}, revoked={self.is_revoked})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class Heartbeat(Base):
    """Last time a background process proved it was alive (read by /readyz)."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    runs: Mapped[int] = mapped_column(Integer, default=0)


class Job(Base):
    """A long action run in the background; its result is fetched or POSTed to a callback."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"), index=True)
    action: Mapped[str] = mapped_column(String(60))
    state: Mapped[str] = mapped_column(String(20), default="pending")
    input_json: Mapped[str] = mapped_column(Text)
    result_json: Mapped[str | None] = mapped_column(Text)
    error_json: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    callback_state: Mapped[str | None] = mapped_column(String(20))
    callback_attempts: Mapped[int] = mapped_column(Integer, default=0)
    callback_last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IdempotencyRecord(Base):
    """The stored outcome of a request sent with an Idempotency-Key (kept 24 h)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("connection_id", "key", name="uq_idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), default="in_progress")
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_json: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class DocumentMapping(Base):
    """External document id -> upstream id, per connection and datastore (the legacy API mints
    new ids on every upsert, so this map is what makes upserts update instead of duplicate)."""

    __tablename__ = "document_map"
    __table_args__ = (
        UniqueConstraint("connection_id", "datastore_id", "external_id", name="uq_document_map"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"))
    datastore_id: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(255))
    upstream_id: Mapped[str | None] = mapped_column(String(100))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    lock_token: Mapped[str | None] = mapped_column(String(32))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
