"""Connection lifecycle: create, authenticate, rotate, revoke. No Flask here.

A connection binds one ZappWay key (encrypted) to one bridge token (hashed). Every ZappWay key is
proven against the upstream's strict `/me` before it is stored or swapped in, so nothing is
written when the key is bad or ZappWay is down. Revocation is a timestamp checked on every
authentication and by `open_zappway`, which background work also goes through.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from bridge.config import Settings
from bridge.connections import key_health
from bridge.infra import crypto, storage
from bridge.infra.errors import BridgeError, InvalidInput
from bridge.infra.hot_reads import HotReads
from bridge.infra.models import Connection
from bridge.runtime import Runtime
from bridge.upstream.client import Organization
from bridge.upstream.errors import UpstreamAuthError, UpstreamForbidden
from bridge.upstream.zappway import ZappWay


class ConnectionAuthError(BridgeError):
    """Raised when a request's connection credential is missing, malformed, unknown or revoked;
    `code` says which (platforms show it when they ask the user to reconnect)."""

    status_code = 401

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="zappway-bridge"'}


class InvalidApiKey(InvalidInput):
    """Raised when a ZappWay key is syntactically unusable (empty, inner whitespace)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fields=["api_key"])


class ConnectionRevoked(BridgeError):
    """Raised when work is attempted for a revoked (or deleted) connection."""

    status_code = 401
    code = "revoked_credentials"
    default_message = "This connection has been revoked"

    def __init__(self, connection_id: str = "") -> None:
        super().__init__()
        self.connection_id = connection_id


class ApiKeyRejected(InvalidInput):
    """Raised when ZappWay refuses a key being registered or rotated in (the caller's input)."""

    code = "api_key_rejected"
    default_message = "ZappWay rejected this API key (invalid or revoked)"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, fields=["api_key"])


class DifferentOrganization(ApiKeyRejected):
    """Raised when a rotated-in key belongs to another ZappWay organization."""

    code = "different_organization"
    default_message = "The new key belongs to another ZappWay organization; create a new connection"


class RegistrationClosed(BridgeError):
    """Raised when self-registration is off and the caller is not the operator."""

    status_code = 403
    code = "registration_closed"
    default_message = "Self-registration is off; ask the operator"


@dataclass(frozen=True)
class IssuedConnection:
    """A connection, its token and its signing secret: the only moment both exist in clear."""

    connection: Connection
    token: str
    signing_secret: str


def normalise_api_key(raw: str) -> str:
    """Trim the key (the upstream's 401 checklist blames stray spaces) and sanity-check it.

    Raises:
        InvalidApiKey: when empty, containing inner whitespace, or absurdly long.
    """
    key = raw.strip()
    if not key:
        raise InvalidApiKey("api_key must not be empty")
    if any(c.isspace() for c in key):
        raise InvalidApiKey("api_key must not contain spaces or line breaks")
    if not key.isascii() or not key.isprintable():
        raise InvalidApiKey("api_key must contain only printable ASCII characters")
    if len(key) > 512:
        raise InvalidApiKey("api_key is too long (max 512 characters)")
    return key


def plan_limit(settings: Settings, plan: str) -> int:
    return settings.limit_for_plan(plan)


def verify_key(runtime: Runtime, api_key: str, plan: str) -> Organization:
    """Prove a ZappWay key works before anything is stored.

    Raises:
        ApiKeyRejected: ZappWay refused the key (the caller's input: 422).
        UpstreamError: ZappWay could not say (down, rate-limited): nothing is stored.
    """
    client = runtime.upstream.client(api_key, plan_limit(runtime.settings, plan))
    try:
        return ZappWay(client).organization()
    except (UpstreamAuthError, UpstreamForbidden) as exc:
        raise ApiKeyRejected() from exc


def verify_replacement(runtime: Runtime, connection: Connection, new_key: str) -> Organization:
    """Prove a key may replace the connection's: it works and belongs to the same organization.

    Raises:
        ApiKeyRejected, DifferentOrganization: the key cannot replace this one (422).
    """
    org = verify_key(runtime, new_key, connection.plan)
    if connection.upstream_org_id and org.id != connection.upstream_org_id:
        raise DifferentOrganization()
    return org


def create(
    session: Session,
    box: crypto.SecretBox,
    org: Organization,
    *,
    api_key: str,
    label: str | None,
    plan: str,
) -> IssuedConnection:
    """Store a verified key and issue a token for it."""
    token = crypto.new_connection_token()
    signing_secret = crypto.new_signing_secret()
    connection = Connection(
        id="conn_" + secrets.token_hex(10),
        label=(label or org.name or "ZappWay connection")[:200],
        plan=plan,
        api_key_ciphertext=box.encrypt(api_key),
        api_key_last4=crypto.last4(api_key),
        token_hash=crypto.hash_token(token),
        token_last4=crypto.last4(token),
        upstream_org_id=org.id,
        upstream_org_name=org.name,
        key_status="valid",
        key_checked_at=datetime.now(UTC),
        api_key_set_at=datetime.now(UTC),
        signing_secret_ciphertext=box.encrypt(signing_secret),
    )
    session.add(connection)
    session.flush()
    return IssuedConnection(connection, token, signing_secret)


@dataclass(frozen=True)
class Credential:
    """What a valid token proves: which live connection calls, on which plan, with which key
    (still encrypted). Read in one indexed statement on every request, so revocation and a
    rotated key apply to the very next call in every process."""

    id: str
    plan: str
    api_key_ciphertext: str
    token_hash: str
    key_status: str  # what ZappWay last said about the key (`key_health`)
    key_checked_at: datetime | None = None  # read by background work only


def authenticate(reads: HotReads, token: str | None) -> Credential:
    """Return what a presented token proves, in one indexed read (a Core statement on the
    process's hot-read connection: this runs on every request).

    Raises:
        ConnectionAuthError: with reason missing, malformed, unknown or revoked.
    """
    if not token:
        raise ConnectionAuthError(
            "missing_credentials",
            "Missing connection token: send 'Authorization: Bearer <token>' "
            "or 'X-API-Key: <token>'",
        )
    if not crypto.looks_like_token(token):
        raise ConnectionAuthError(
            "malformed_credentials",
            f"Malformed connection token: expected '{crypto.TOKEN_PREFIX}' "
            "followed by 43 characters",
        )
    digest = crypto.hash_token(token)
    row = reads.first_row(_BY_TOKEN, {"digest": digest})
    if row is None:
        raise ConnectionAuthError("unknown_credentials", "Unknown connection token")
    id_, plan, api_key_ciphertext, token_hash, revoked_at, key_status = row
    if not crypto.same_secret(token_hash, digest):
        raise ConnectionAuthError("unknown_credentials", "Unknown connection token")
    if revoked_at is not None:
        raise ConnectionAuthError("revoked_credentials", "This connection has been revoked")
    return Credential(id_, plan, api_key_ciphertext, token_hash, key_status)


def credential(runtime: Runtime, connection_id: str) -> Credential:
    """The connection's credential, read again (background work: revocation applies at once).

    Raises:
        ConnectionRevoked: when the connection is gone or revoked.
    """
    with storage.autocommit(runtime.engine) as db:
        row = db.execute(_BY_ID, {"connection_id": connection_id}).first()
    if row is None or row.revoked_at is not None:
        raise ConnectionRevoked(connection_id)
    return Credential(
        row.id, row.plan, row.api_key_ciphertext, row.token_hash, row.key_status,
        row.key_checked_at,
    )  # fmt: skip


_CONNECTIONS = cast(Table, Connection.__table__)
_COLUMNS = (
    _CONNECTIONS.c.id, _CONNECTIONS.c.plan, _CONNECTIONS.c.api_key_ciphertext,
    _CONNECTIONS.c.token_hash, _CONNECTIONS.c.revoked_at, _CONNECTIONS.c.key_status,
)  # fmt: skip
# Built once: compiling a statement per request cost more than running it.
_BY_TOKEN = select(*_COLUMNS).where(_CONNECTIONS.c.token_hash == bindparam("digest"))
_BY_ID = select(*_COLUMNS, _CONNECTIONS.c.key_checked_at).where(
    _CONNECTIONS.c.id == bindparam("connection_id")
)


def open_zappway(
    runtime: Runtime, connection_id: str, max_wait: float | None = None,
    *, hold_rejected_key: bool = False,
) -> ZappWay:  # fmt: skip
    """ZappWay operations with the connection's key, re-reading the connection so that
    revocation applies at once (background work; requests use `zappway_for` with the
    credential they authenticated with).

    `max_wait` caps how long a call may wait for the key's rate budget (default
    BRIDGE_RATE_WAIT); background work passes 0 and reschedules itself instead.
    `hold_rejected_key`: refuse a key ZappWay rejected minutes ago instead of sending it again
    (polls: see `key_health`).

    Raises:
        ConnectionRevoked: when the connection is gone or revoked.
        KeyOnHold: with `hold_rejected_key`, when the key was rejected moments ago.
    """
    caller = credential(runtime, connection_id)
    if hold_rejected_key:
        key_health.hold_for(caller.key_status, caller.key_checked_at, datetime.now(UTC))
    return zappway_for(runtime, caller, max_wait)


def zappway_for(runtime: Runtime, caller: Credential, max_wait: float | None = None) -> ZappWay:
    """ZappWay operations with this credential's key (decrypted once per process and key),
    reporting what ZappWay says about the key to the connection's record of it."""
    api_key = runtime.box.decrypt_cached(caller.api_key_ciphertext)
    limit = plan_limit(runtime.settings, caller.plan)
    record = key_health.KeyRecord(runtime, caller.id, caller.key_status)
    return ZappWay(runtime.upstream.client(api_key, limit, max_wait, record))


def reverify(runtime: Runtime, session: Session, connection: Connection) -> None:
    """Check the stored key at ZappWay again; the answer is recorded on the connection
    (`key_health`: a refusal marks it rejected, a success valid again) and read back.

    Raises:
        UpstreamAuthError: ZappWay refused the stored key (401: the user must rotate it).
        UpstreamError: ZappWay could not say.
    """
    try:
        open_zappway(runtime, connection.id).organization()
    finally:
        session.commit()  # ends the read snapshot, so the refresh sees the record's write
        session.refresh(connection)


def replace_api_key(
    connection: Connection, box: crypto.SecretBox, org: Organization, new_key: str
) -> None:
    """Swap in a key already verified by `verify_key` (one UPDATE: atomic)."""
    connection.api_key_ciphertext = box.encrypt(new_key)
    connection.api_key_last4 = crypto.last4(new_key)
    connection.upstream_org_id = org.id
    connection.upstream_org_name = org.name
    connection.key_status = "valid"
    connection.key_checked_at = connection.api_key_set_at = datetime.now(UTC)


def signing_secret(connection: Connection, box: crypto.SecretBox) -> str:
    """Return the secret that signs callbacks and hook deliveries to this connection's URLs."""
    if connection.signing_secret_ciphertext is None:
        raise ConnectionRevoked(connection.id)
    return box.decrypt(connection.signing_secret_ciphertext)


def rotate_signing_secret(connection: Connection, box: crypto.SecretBox) -> str:
    secret = crypto.new_signing_secret()
    connection.signing_secret_ciphertext = box.encrypt(secret)
    return secret


def rotate_token(connection: Connection) -> str:
    """Issue a new token; the old one stops working immediately."""
    token = crypto.new_connection_token()
    connection.token_hash = crypto.hash_token(token)
    connection.token_last4 = crypto.last4(token)
    return token


def revoke(connection: Connection) -> None:
    if connection.revoked_at is None:
        connection.revoked_at = datetime.now(UTC)


def find(session: Session, connection_id: str) -> Connection | None:
    return session.get(Connection, connection_id)


def list_all(session: Session, include_revoked: bool = False) -> list[Connection]:
    query = select(Connection).order_by(Connection.created_at)
    if not include_revoked:
        query = query.where(Connection.revoked_at.is_(None))
    return list(session.scalars(query))


def describe(connection: Connection, settings: Settings) -> dict[str, object]:
    """Public view of a connection: never the key or the token, only their last 4."""
    return {
        "id": connection.id,
        "label": connection.label,
        "plan": connection.plan,
        "rate_limit_per_minute": plan_limit(settings, connection.plan),
        "api_key_last4": connection.api_key_last4,
        "token_last4": connection.token_last4,
        "key_status": connection.key_status,
        "organization": {"id": connection.upstream_org_id, "name": connection.upstream_org_name},
        "created_at": connection.created_at.isoformat(),
        "revoked_at": connection.revoked_at.isoformat() if connection.revoked_at else None,
    }
