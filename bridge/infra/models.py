"""Database tables, declared once with SQLAlchemy 2 typed mappings.

Secret columns hold ciphertext (`*_ciphertext`) or digests (`*_hash`) only; plaintext never
reaches this layer. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database.

    SQLite has no time zones: values are stored as naive UTC and come back aware, so Python
    comparisons and SQL comparisons agree on both backends.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


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
    key_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    signing_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    event_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sync_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the current ZappWay key was stored (created or rotated in): its age, for the 90-day
    # rotation advice. Last authenticated request, written in batches by the activity log.
    api_key_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"Connection(id={self.id!r}, label={self.label!r}, revoked={self.is_revoked})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class Heartbeat(Base):
    """Last time a background process proved it was alive (read by /readyz)."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
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
    # Worker runs started: a job a stopping worker handed back runs again (shown when > 1).
    runs: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


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
    # A writer's lease (`bridge.infra.leases`), named as the watches' and deliveries' are; the
    # columns keep the names they were created with.
    lease_token: Mapped[str | None] = mapped_column("lock_token", String(32))
    lease_until: Mapped[datetime | None] = mapped_column("locked_until", UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # Set before a create is sent, cleared when its answer (the upstream id) is recorded: while
    # set, ZappWay may hold a copy the map does not know, found by `sent_name` or external id.
    unconfirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_name: Mapped[str | None] = mapped_column(String(300))


class Watch(Base):
    """One (connection, trigger, agent) whose new events are detected, with its durable cursor.

    `cursor_created_at` is the newest event time already recorded; the next read asks
    the upstream for conversations after it (minus a second) and relies on the event log's
    uniqueness to drop repeats, so restarts neither miss nor duplicate anything.
    """

    __tablename__ = "watches"
    __table_args__ = (
        UniqueConstraint("connection_id", "event_type", "agent_id", name="uq_watch_event"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"))
    event_type: Mapped[str] = mapped_column(String(60), server_default="new_conversation")
    agent_id: Mapped[str] = mapped_column(String(100))
    cursor_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_token: Mapped[str | None] = mapped_column(String(16))  # whose lease (`infra.leases`)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Event(Base):
    """One detected occurrence (a new conversation) in a connection's event log."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("connection_id", "event_type", "object_id", name="uq_event_object"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(60))
    agent_id: Mapped[str] = mapped_column(String(100), index=True)
    object_id: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    payload_json: Mapped[str] = mapped_column(Text)
    seeded: Mapped[bool] = mapped_column(default=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Subscription(Base):
    """A REST hook: where to POST a connection's events, signed with its own secret."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(60))
    agent_id: Mapped[str | None] = mapped_column(String(100))
    target_url: Mapped[str] = mapped_column(Text)
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default="active")
    state_reason: Mapped[str | None] = mapped_column(String(300))
    start_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Delivery(Base):
    """One event owed to one subscription; its `message_id` is the stable `webhook-id`."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id", name="uq_delivery"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_token: Mapped[str | None] = mapped_column(String(16))  # whose lease (`infra.leases`)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeliveryAttempt(Base):
    """The record of one POST attempt (never the secret or the response body)."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(300))


class Source(Base):
    """An inbound CMS webhook endpoint: provider, target datastore, secrets (encrypted)."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    connection_id: Mapped[str] = mapped_column(ForeignKey("connections.id"), index=True)
    provider: Mapped[str] = mapped_column(String(40))
    datastore_id: Mapped[str] = mapped_column(String(100))
    path_token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    path_token_ciphertext: Mapped[str] = mapped_column(Text)
    secrets_ciphertext: Mapped[str] = mapped_column(Text)
    config_json: Mapped[str] = mapped_column(Text, default="{}")
    state: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InboundEvent(Base):
    """One request received on a source: verification result and the changes it carried."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("source_id", "delivery_key", name="uq_inbound_delivery"),
        # What housekeeping may purge (rows without a delivery key), by age.
        Index(
            "ix_inbound_events_unkeyed_received_at",
            "received_at",
            sqlite_where=text("delivery_key IS NULL"),
            postgresql_where=text("delivery_key IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivery_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(100))
    changes_json: Mapped[str] = mapped_column(Text, default="[]")


class PendingDocument(Base):
    """The newest known state of one CMS document, coalesced, until it reaches ZappWay.

    One row per (source, CMS id). A change replaces the row only when its version is newer, so
    arrival order never wins over the CMS's own order; a delete is a tombstone with a version,
    and a late, older update cannot bring the document back.
    """

    __tablename__ = "pending_documents"
    __table_args__ = (UniqueConstraint("source_id", "cms_id", name="uq_pending_document"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    connection_id: Mapped[str] = mapped_column(String(40), index=True)
    cms_id: Mapped[str] = mapped_column(String(255))
    op: Mapped[str] = mapped_column(String(10))
    version: Mapped[str] = mapped_column(String(40))
    document_json: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(300))
    upstream_id: Mapped[str | None] = mapped_column(String(100))
    delivered_version: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class ApiRequest(Base):
    """One authenticated request of a connection, as its owner watches it in the console.

    Written in batches by `bridge.console.activity` (never the token, the query string or an
    inbound URL's token), kept BRIDGE_ACTIVITY_RETENTION_DAYS. `minute` (Unix time // 60) is
    what the usage chart groups by, the same on every database.
    """

    __tablename__ = "api_requests"
    __table_args__ = (Index("ix_api_requests_connection_minute", "connection_id", "minute"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connection_id: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    minute: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(10))
    route: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(300))
    status: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(64))


class DurableMark(Base):
    """A small fact the bridge must remember when Redis forgets everything (one row per name):
    today the rate limiter's Redis epoch, which tells a flushed Redis from a first start."""

    __tablename__ = "durable_marks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
