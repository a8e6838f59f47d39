"""Database tables, declared once with SQLAlchemy 2 typed mappings.

Secret columns hold ciphertext (`*_ciphertext`) or digests (`*_hash`) only; plaintext never
reaches this layer. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String, Text
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
