"""Receiving one CMS webhook: verify, parse, map, store durably, acknowledge. No upstream call.

The recipe runs in the request and writes once (`bridge.sync.store`): the verifier chosen by
the source (never by sniffing headers) checks the raw bytes; a repeated delivery id is acknowledged
and dropped; each mapped change is coalesced into its document's row, where only a newer version
replaces what is there (a delete is a versioned tombstone); the connection's sync is scheduled
once per debounce. Everything slow (fetching thin payloads, calling ZappWay) happens later in the
worker.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection as DBConnection

from bridge.infra import jsontext, metrics
from bridge.infra.crypto import SecretBox
from bridge.infra.errors import ClientError
from bridge.infra.jsontext import INBOUND_DEPTH, JsonTooDeep
from bridge.sync.marker import STALE_MARKER
from bridge.sync.providers.errors import MappingError
from bridge.sync.providers.generic import GenericConfig
from bridge.sync.providers.mapping import Change, delivery_key, map_event
from bridge.sync.providers.providers import PROVIDERS, Provider
from bridge.sync.providers.verify import VerificationError, verify
from bridge.sync.source_config import resolve
from bridge.sync.sources import InboundTarget, active_secrets, external_id
from bridge.sync.store import write_event

log = logging.getLogger(__name__)
MAX_EXTERNAL_ID = 255  # DocumentMapping.external_id, where `<source id>:<cms id>` is kept
MAX_VERSION = 40  # PendingDocument.version


@dataclass(frozen=True)
class IngestResult:
    status: str  # accepted | duplicate | ignored
    event_id: int | None
    changes: int
    schedule_sync: bool


class IngestRejected(ClientError):
    """Raised when a request fails verification (400/401) or its verified payload is unusable
    (422); the event is recorded either way, with nothing queued. `code` is the reason slug."""

    def __init__(self, status: int, reason: str, detail: str | None = None) -> None:
        super().__init__(status, reason, f"Webhook rejected: {detail or reason}")


class NotAsKnown(Exception):
    """Raised instead of any answer when a remembered source (`known_digest`) may no longer be
    as remembered: its guarded write found it changed, or the request failed verification or
    mapping by the remembered recipe. Nothing was written; the caller looks the source up and
    runs the request again, which gives the answer (a rejection is recorded then, once)."""


def ingest(
    db: DBConnection,
    box: SecretBox,
    source: InboundTarget,
    *,
    raw_body: bytes,
    headers: Mapping[str, str],
    method: str,
    path: str,
    debounce_s: float,
    stale_after: timedelta = STALE_MARKER,
    route_event: str | None = None,
    known_digest: str | None = None,
) -> IngestResult:
    """Run the recipe for one request on `db` (a Core connection: no ORM on this path); the
    caller commits. `route_event` is the inbound URL's event suffix (`/in/<token>/<event>`),
    already checked by the view. `known_digest`: `source` was remembered, not read for this
    request (PostgreSQL; `sources.KnownSources`); the write is guarded by it.

    Raises:
        IngestRejected: verification or parsing failed (a rejected event is recorded).
        NotAsKnown: with `known_digest` only, instead of any rejection or when the source
            changed (nothing is recorded).
    """
    try:
        return _ingest(db, box, source, raw_body=raw_body, headers=headers, method=method,
                       path=path, debounce_s=debounce_s, stale_after=stale_after,
                       route_event=route_event, known_digest=known_digest)  # fmt: skip
    except IngestRejected as exc:
        if known_digest is None:
            raise
        raise NotAsKnown from exc


def _ingest(
    db: DBConnection, box: SecretBox, source: InboundTarget, *, raw_body: bytes,
    headers: Mapping[str, str], method: str, path: str, debounce_s: float,
    stale_after: timedelta, route_event: str | None, known_digest: str | None,
) -> IngestResult:  # fmt: skip
    provider, config = _recipe(source.provider, source.config_json)
    now = time.time()
    try:
        verify(provider, active_secrets(source, box, datetime.now(UTC)), raw_body, headers,
               method=method, path=path, now=now, config=config)  # fmt: skip
    except VerificationError as exc:
        _reject(db, source, "rejected", exc.reason, known_digest)
        raise IngestRejected(exc.status, exc.reason) from exc
    try:
        # Depth checked before the parser's recursion can fail; a lone surrogate becomes U+FFFD
        # (it could never be encoded for ZappWay, and one broken character should not cost the
        # document).
        payload = jsontext.loads(raw_body, max_depth=INBOUND_DEPTH, repair=True)
    except JsonTooDeep as exc:
        _reject(db, source, "rejected", "json-too-deep", known_digest)
        detail = f"JSON nested deeper than {INBOUND_DEPTH} levels"
        raise IngestRejected(400, "json-too-deep", detail) from exc
    except ValueError as exc:  # not UTF-8, or not JSON
        _reject(db, source, "rejected", "malformed-json", known_digest)
        raise IngestRejected(400, "malformed-json") from exc
    try:
        changes, key = _read(source, provider, config, payload, headers, now, route_event)
    except MappingError as exc:
        _reject(db, source, "unmappable", exc.reason, known_digest)
        raise IngestRejected(422, exc.reason) from exc
    written = write_event(db, source, key=key, status="accepted", reason=None, changes=changes,
                          debounce_s=debounce_s, stale_after=stale_after,
                          known_digest=known_digest)  # fmt: skip
    if written.source_changed:
        raise NotAsKnown
    if written.event_id is None:
        result = IngestResult("duplicate", None, 0, False)
    else:
        status = "accepted" if changes else "ignored"
        result = IngestResult(status, written.event_id, len(changes), written.sync_claimed)
    metrics.get().inbound_events.labels(source.provider, result.status).inc()
    return result


def _newest_per_document(changes: list[Change]) -> list[Change]:
    """One change per document: the newest version, the first of equal ones (what applying
    them one by one would leave)."""
    newest: dict[str, Change] = {}
    for change in changes:
        kept = newest.get(change.cms_id)
        if kept is None or change.version > kept.version:
            newest[change.cms_id] = change
    return list(newest.values())


def _reject(
    db: DBConnection, source: InboundTarget, status: str, reason: str, known_digest: str | None
) -> None:
    """Record a refused request for the source's events; nothing is queued for it. Not for a
    remembered source: the request is run again on the source as read (`NotAsKnown`)."""
    if known_digest is not None:
        return
    write_event(db, source, key=None, status=status, reason=reason, changes=[], debounce_s=0)
    metrics.get().inbound_events.labels(source.provider, status).inc()


@functools.lru_cache(maxsize=1024)
def _recipe(provider_key: str, config_json: str) -> tuple[Provider, GenericConfig | None]:
    """The source's verifier and mapping, parsed once per distinct stored config."""
    return resolve(PROVIDERS[provider_key], json.loads(config_json))


def _read(
    source: InboundTarget, provider: Provider, config: GenericConfig | None, payload: Any,
    headers: Mapping[str, str], now: float, route_event: str | None = None,
) -> tuple[list[Change], str | None]:  # fmt: skip
    """Map a verified payload and find its delivery key, refusing what cannot be stored.

    Raises:
        MappingError: the provider's own reason; `malformed-payload` when a field has a type
            the mapper does not expect; `bad-id` / `bad-version` when a value does not fit
            the storage columns (too long, or an id with control characters).
    """
    try:
        changes = map_event(provider, payload, headers, config, received_at=now,
                            route_event=route_event)  # fmt: skip
        key = delivery_key(provider, payload, headers, config, route_event=route_event)
    except MappingError:
        raise
    # A verified sender may still put a list where a string belongs: that is a 422 the user
    # sees in the source's events, not a 500 the sender would retry for hours.
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError,
            RecursionError) as exc:  # fmt: skip
        log.warning("inbound.unmappable provider=%s error=%s", provider.key, type(exc).__name__)
        raise MappingError("malformed-payload") from exc
    changes = _newest_per_document(changes)
    for change in changes:
        document_id = external_id(source.id, change.cms_id)
        if len(document_id) > MAX_EXTERNAL_ID or not change.cms_id.isprintable():
            raise MappingError("bad-id")
        if len(change.version) > MAX_VERSION:
            raise MappingError("bad-version")
    return changes, key
