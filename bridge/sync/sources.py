"""Inbound sources: one CMS webhook endpoint per (connection, provider, datastore).

The inbound URL's last segment is a random token (only its SHA-256 is used for lookup; it is
kept encrypted to show the owner again). Signing secrets are encrypted as one blob that also
holds the previous secret until its overlap ends, so a rotation never drops a delivery.
"""

from __future__ import annotations

import functools
import json
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Connection as DBConnection
from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from bridge.infra import crypto, netguard, prepared
from bridge.infra.errors import InvalidInput
from bridge.infra.models import Connection, Source
from bridge.infra.ownership import owned, owned_rows
from bridge.runtime import Runtime
from bridge.sync import marker
from bridge.sync import state as sync_state
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.source_config import check_secret

TOKEN_BYTES = 24
ROTATION_OVERLAP = timedelta(hours=24)
MAX_PREVIOUS = 5


@dataclass(frozen=True)
class NewSource:
    source: Source
    path_token: str
    secret: str


def new_secret(provider: str) -> str:
    """A secret in the form the provider expects (Standard Webhooks wants `whsec_` base64)."""
    if provider in ("standard_webhooks", "payload"):
        return crypto.new_signing_secret()
    return secrets.token_urlsafe(32)


def check_base_url(url: str, allow_private_targets: bool) -> None:
    """Apply the hook and callback SSRF rules to a CMS base URL (shape, then current DNS).

    Raises:
        InvalidInput: naming `credentials.base_url`.
    """
    try:
        netguard.validate_target(url, allow_private_targets)
    except netguard.UnsafeTarget as exc:
        field = "credentials.base_url"
        raise InvalidInput(f"{field}: {exc}", fields=[field]) from exc


def create(
    session: Session,
    box: crypto.SecretBox,
    connection_id: str,
    *,
    provider: str,
    datastore_id: str,
    secret: str | None,
    config: dict[str, Any],
    credentials: dict[str, str] | None = None,
    allow_private_targets: bool = False,
) -> NewSource:
    """Store a new source; its inbound URL token and signing secret are returned once.

    Raises:
        InvalidInput: (field `credentials.base_url`) the CMS base URL is, or resolves to, an
            address the SSRF rules refuse: checked now, before any connection, as for hooks.
    """
    if credentials and "base_url" in credentials:
        check_base_url(credentials["base_url"], allow_private_targets)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    chosen = secret or new_secret(provider)
    source = Source(
        id="src_" + secrets.token_hex(10),
        connection_id=connection_id,
        provider=provider,
        datastore_id=datastore_id,
        path_token_hash=crypto.hash_token(token),
        path_token_ciphertext=box.encrypt(token),
        secrets_ciphertext=box.encrypt(
            json.dumps({"current": chosen, "previous": [], "credentials": credentials or {}})
        ),
        config_json=json.dumps(config),
        state="active",
    )
    session.add(source)
    session.flush()
    return NewSource(source, token, chosen)


@dataclass(frozen=True)
class InboundTarget:
    """What receiving a webhook needs of its source, read in one statement (no ORM object:
    this runs on every webhook)."""

    id: str
    connection_id: str
    provider: str
    config_json: str
    secrets_ciphertext: str
    state: str
    connection_revoked: bool


def find_by_token(db: DBConnection, token: str) -> InboundTarget | None:
    """The source whose inbound URL ends in `token`, with what it needs of its connection."""
    return find_by_digest(db, crypto.hash_token(token))


def find_by_digest(db: DBConnection, digest: str) -> InboundTarget | None:
    """`find_by_token`, given the token's stored form (`crypto.hash_token`)."""
    row = prepared.first_row(db, _BY_TOKEN, {"digest": digest})  # on the driver's cursor
    if row is None:
        return None
    id_, connection_id, provider, config_json, ciphertext, state, token_hash, revoked_at = row
    if not crypto.same_secret(token_hash, digest):
        return None
    return InboundTarget(
        id=id_,
        connection_id=connection_id,
        provider=provider,
        config_json=config_json,
        secrets_ciphertext=ciphertext,
        state=state,
        connection_revoked=revoked_at is not None,
    )


class KnownSources:
    """The sources this process has seen accept a webhook, by token digest: a hint, never the
    truth.

    On PostgreSQL the lookup is a round trip of its own before the write. With a known source
    the ack verifies against what was read before and writes in one statement guarded by the
    source row as it is at that moment (`bridge.sync.store`'s guarded write): deleted,
    revoked, rotated or reconfigured since, the guard writes nothing and the ack starts again
    from a fresh lookup. So revocation still applies to the next webhook, and a stale entry
    costs one round trip, never a wrong answer. Per process and bounded: nothing here must be
    shared between processes.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._known: dict[str, InboundTarget] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> InboundTarget | None:
        return self._known.get(digest)

    def remember(self, digest: str, source: InboundTarget) -> None:
        with self._lock:
            if len(self._known) >= self._size and digest not in self._known:
                del self._known[next(iter(self._known))]  # the oldest entry
            self._known[digest] = source

    def forget(self, digest: str) -> None:
        with self._lock:
            self._known.pop(digest, None)


_SOURCES = cast(Table, Source.__table__)
_CONNECTIONS = cast(Table, Connection.__table__)
_BY_TOKEN = (
    select(
        _SOURCES.c.id, _SOURCES.c.connection_id, _SOURCES.c.provider, _SOURCES.c.config_json,
        _SOURCES.c.secrets_ciphertext, _SOURCES.c.state, _SOURCES.c.path_token_hash,
        _CONNECTIONS.c.revoked_at,
    )
    .join(_CONNECTIONS, _CONNECTIONS.c.id == _SOURCES.c.connection_id)
    .where(_SOURCES.c.path_token_hash == bindparam("digest"))
)  # fmt: skip


class SourceSecrets(Protocol):
    @property
    def secrets_ciphertext(self) -> str: ...


def active_secrets(source: SourceSecrets, box: crypto.SecretBox, now: datetime) -> list[str]:
    """The current secret, then previous ones still inside their overlap window."""
    current, previous = _signing_secrets(box, source.secrets_ciphertext)
    return [current, *(secret for secret, until in previous if until > now)]


@functools.lru_cache(maxsize=4096)
def _signing_secrets(
    box: crypto.SecretBox, ciphertext: str
) -> tuple[str, tuple[tuple[str, datetime], ...]]:
    """Decrypt once per ciphertext: a rotation writes a new ciphertext, so this never serves
    a replaced secret, and the ack path skips a Fernet decrypt per webhook."""
    blob = json.loads(box.decrypt(ciphertext))
    previous = tuple(
        (entry["secret"], datetime.fromisoformat(entry["until"]))
        for entry in blob.get("previous", [])
    )
    return blob["current"], previous


@dataclass(frozen=True)
class Target:
    """Where a source's documents go, and the CMS credentials its thin payloads need."""

    datastore_id: str
    credentials: dict[str, str]


def targets(runtime: Runtime, source_ids: set[str]) -> dict[str, Target]:
    """Each source's target, by source id."""
    with runtime.sessions() as session:
        rows = session.scalars(select(Source).where(Source.id.in_(source_ids)))
        return {
            row.id: Target(row.datastore_id, fetch_credentials(row, runtime.box)) for row in rows
        }


def fetch_credentials(source: Source, box: crypto.SecretBox) -> dict[str, str]:
    """The CMS read credentials for thin payloads (`token`, `base_url`), possibly empty."""
    credentials: dict[str, str] = json.loads(box.decrypt(source.secrets_ciphertext)).get(
        "credentials", {}
    )
    return credentials


def rotate_secret(source: Source, box: crypto.SecretBox, new: str | None) -> str:
    """Make `new` (or a fresh secret) current; the old one keeps verifying for the overlap.

    Earlier secrets still inside their own overlap stay too (a second rotation on the same
    day must not cut off a sender still using the first secret), up to `MAX_PREVIOUS`.

    Raises:
        InvalidInput: (field `secret`) `new` could never verify for the source's provider.
    """
    if new is not None:
        try:
            check_secret(PROVIDERS[source.provider], new)
        except ValueError as exc:
            raise InvalidInput(f"secret: {exc}", fields=["secret"]) from exc
    blob = json.loads(box.decrypt(source.secrets_ciphertext))
    now = datetime.now(UTC)
    still_valid = [
        entry for entry in blob.get("previous", []) if datetime.fromisoformat(entry["until"]) > now
    ]
    retired = {"secret": blob["current"], "until": (now + ROTATION_OVERLAP).isoformat()}
    blob["previous"] = [retired, *still_valid][:MAX_PREVIOUS]
    blob["current"] = new or new_secret(source.provider)
    source.secrets_ciphertext = box.encrypt(json.dumps(blob))
    return str(blob["current"])


def external_id(source_id: str, cms_id: str) -> str:
    """The deterministic id the bridge gives a CMS document in ZappWay (per source)."""
    return f"{source_id}:{cms_id}"


def inbound_path(token: str) -> str:
    return f"/in/{token}"


def describe(source: Source, box: crypto.SecretBox) -> dict[str, Any]:
    """Public view of a source: its inbound path (the owner may see it again), never secrets."""
    return {
        "id": source.id,
        "provider": source.provider,
        "datastore_id": source.datastore_id,
        "inbound_path": inbound_path(box.decrypt(source.path_token_ciphertext)),
        "state": source.state,
        "created_at": source.created_at.isoformat(),
    }


def find_owned(session: Session, connection_id: str, source_id: str) -> Source:
    """The connection's live source.

    Raises:
        NotFound: missing, deleted, or another connection's.
    """
    return owned(session, Source, source_id, connection_id, "source")


def list_owned(session: Session, connection_id: str) -> list[Source]:
    return owned_rows(session, Source, connection_id)


def delete(session: Session, source: Source) -> None:
    """The source's URL answers 410 from now on, and its documents still waiting are not sent
    (the user asked for the sync to stop). The caller commits."""
    source.state = "deleted"
    sync_state.cancel_source(session, source.id)


def replay_dead(session: Session, runtime: Runtime, source: Source) -> tuple[int, bool]:
    """Make the source's dead documents pending again; returns how many, and whether the caller
    won the connection's sync marker (then it schedules the sync: committed here first)."""
    count = sync_state.replay(runtime, source.id)
    stale_after = timedelta(seconds=runtime.settings.sync_stale_after_s)
    claimed = marker.claim(session, source.connection_id, 0, stale_after)
    session.commit()
    return count, claimed
