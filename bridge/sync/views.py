"""HTTP routes for inbound CMS webhooks: manage sources, receive webhooks, show what happened.

`POST /in/<token>` is the URL pasted into the CMS: it verifies, stores and answers 202 within
milliseconds whatever state ZappWay is in. `POST /in/<token>/<event>` is the same URL with the
trigger's name appended, for senders that do not name the event (one URL per trigger).
`/v1/sources...` are the connection's management and visibility endpoints.
"""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, fields, validate
from sqlalchemy import Connection as DBConnection

from bridge.infra import crypto, storage
from bridge.infra.errors import ClientError, NotFound
from bridge.schemas import ToolInput, integer
from bridge.sync import inbound_events, sources
from bridge.sync.ingest import IngestRejected, IngestResult, NotAsKnown, ingest
from bridge.sync.schemas import CreateSourceIn, source_options
from bridge.sync.tasks import SyncTasks
from bridge.web.api import Answer, Endpoint, endpoint
from bridge.web.auth import current_caller, require_connection
from bridge.web.body import json_object
from bridge.web.context import attribute, get_session, runtime, service, settings

bp = Blueprint("sources", __name__)
# What an inbound URL's event suffix may be: a trigger name such as post_delete or page.deleted.
EVENT_SUFFIX = re.compile(r"[a-z0-9_.-]{1,64}")


class EventsQuery(ToolInput):
    before = integer(1, metadata={
        "description": "Only events older than this event id: the next page starts before "
        "the last id of this one."
    })  # fmt: skip
    limit = integer(1, inbound_events.PAGE, load_default=inbound_events.PAGE)
    status = fields.String(validate=validate.OneOf(inbound_events.STATUSES))


class RotateSecretIn(ToolInput):
    secret = fields.String(validate=validate.Length(min=8, max=500))


class SourceOut(Schema):
    id = fields.String(required=True)
    provider = fields.String(required=True)
    datastore_id = fields.String(required=True)
    inbound_path = fields.String(required=True)
    state = fields.String(required=True)
    created_at = fields.String(required=True)


class SourceCreated(SourceOut):
    inbound_url = fields.String(required=True, metadata={"description": "Paste into the CMS"})
    secret = fields.String(required=True, metadata={"description": "Shown once"})


class SecretOut(Schema):
    id = fields.String(required=True)
    secret = fields.String(required=True)


class DocumentsReplayed(Schema):
    replayed = fields.Integer(required=True)


class DocumentFate(Schema):
    cms_id = fields.String(required=True)
    op = fields.String(required=True)
    version = fields.String(required=True)
    state = fields.String(required=True)
    upstream_id = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    by_version = fields.String()


class EventOut(Schema):
    id = fields.Integer(required=True)
    received_at = fields.String(required=True)
    status = fields.String(required=True)
    reason = fields.String(allow_none=True, required=True)
    delivery_key = fields.String(allow_none=True, required=True)
    documents = fields.List(fields.Nested(DocumentFate), required=True)


class Received(Schema):
    status = fields.String(required=True)
    event_id = fields.Integer(allow_none=True, required=True)
    changes = fields.Integer(required=True)


@bp.post("/v1/sources")
@endpoint(Endpoint(
    "Create an inbound CMS source (URL and secret shown once)",
    {201: Answer(SourceCreated, "Created")}, (400, 401, 413, 422), body=CreateSourceIn,
))  # fmt: skip
@require_connection
def create_source() -> tuple[Response, int]:
    """Create an inbound source; its URL and signing secret are returned (the secret only now)."""
    data = CreateSourceIn().load(json_object())
    session = get_session()
    created = sources.create(
        session, runtime().box, current_caller().id,
        provider=data["provider"], datastore_id=data["datastore_id"],
        secret=data.get("secret"), config=source_options(data),
        credentials=data.get("credentials") or {},
        allow_private_targets=runtime().settings.allow_private_targets,
    )  # fmt: skip
    session.commit()
    body = sources.describe(created.source, runtime().box)
    inbound_url = request.host_url.rstrip("/") + body["inbound_path"]
    return jsonify({**body, "inbound_url": inbound_url, "secret": created.secret}), 201


@bp.get("/v1/sources")
@endpoint(Endpoint("List inbound sources", {200: Answer(SourceOut, many=True)}, (401,)))
@require_connection
def list_sources() -> Response:
    rows = sources.list_owned(get_session(), current_caller().id)
    return jsonify([sources.describe(row, runtime().box) for row in rows])


@bp.delete("/v1/sources/<source_id>")
@endpoint(Endpoint(
    "Delete a source (its URL answers 410)", {204: Answer(None, "Deleted")}, (401, 404)
))  # fmt: skip
@require_connection
def delete_source(source_id: str) -> tuple[str, int]:
    """Delete a source: its URL answers 410 from now on, so senders that honour it stop."""
    session = get_session()
    sources.delete(session, sources.find_owned(session, current_caller().id, source_id))
    session.commit()
    return "", 204


@bp.post("/v1/sources/<source_id>/rotate-secret")
@endpoint(Endpoint(
    "New signing secret (the old one verifies for 24 h)", {200: Answer(SecretOut)},
    (400, 401, 404, 422), body=RotateSecretIn, body_required=False,
))  # fmt: skip
@require_connection
def rotate_secret(source_id: str) -> Response:
    """New signing secret; the old one keeps verifying for 24 hours."""
    session = get_session()
    source = sources.find_owned(session, current_caller().id, source_id)
    chosen: str | None = RotateSecretIn().load(json_object(optional=True)).get("secret")
    secret = sources.rotate_secret(source, runtime().box, chosen)
    session.commit()
    return jsonify({"id": source.id, "secret": secret})


@bp.post("/v1/sources/<source_id>/replay")
@endpoint(Endpoint(
    "Send dead-lettered documents again", {202: Answer(DocumentsReplayed, "Queued")}, (401, 404)
))  # fmt: skip
@require_connection
def replay(source_id: str) -> tuple[Response, int]:
    """Send the source's dead-lettered documents again."""
    session = get_session()
    source = sources.find_owned(session, current_caller().id, source_id)
    count, claimed = sources.replay_dead(session, runtime(), source)
    if claimed:
        service(SyncTasks).schedule(source.connection_id, 0)
    return jsonify({"replayed": count}), 202


@bp.get("/v1/sources/<source_id>/events")
@endpoint(Endpoint(
    "Received events and each document's fate, newest first",
    {200: Answer(EventOut, many=True)}, (401, 404, 422), query=EventsQuery,
))  # fmt: skip
@require_connection
def events(source_id: str) -> Response:
    """Each received event, its verification result, and the fate of each document it carried;
    newest first, a page of `limit` at a time (`before` pages back, `status` filters)."""
    session = get_session()
    source = sources.find_owned(session, current_caller().id, source_id)
    query = EventsQuery().load(request.args.to_dict())
    return jsonify(inbound_events.page(
        session, source.id, limit=query["limit"], before=query.get("before"),
        status=query.get("status"),
    ))  # fmt: skip


@bp.post("/in/<token>")
@endpoint(Endpoint(
    "Inbound CMS webhook (the URL pasted into the CMS)",
    {200: Answer(Received, "Duplicate or nothing to do"), 202: Answer(Received, "Stored")},
    (400, 401, 404, 410, 413, 422), body={}, body_required=False, secured=False,
))  # fmt: skip
def receive(token: str) -> tuple[Response, int]:
    """The URL a CMS calls. 202 once stored; 401/400 when verification fails; 410 once the
    source is deleted or its connection revoked."""
    return _receive(token, None)


@bp.post("/in/<token>/<event>")
@endpoint(Endpoint(
    "Inbound CMS webhook for one trigger (the URL with the event's name appended)",
    {200: Answer(Received, "Duplicate or nothing to do"), 202: Answer(Received, "Stored")},
    (400, 401, 404, 410, 413, 422), body={}, body_required=False, secured=False,
    description="For senders that do not say which event fired (WP Webhooks without an "
    "X-WP-Webhook-Name header): give each trigger its own URL, e.g. /in/<token>/post_delete. "
    "The suffix is the event when the payload names none: 1 to 64 of a-z 0-9 _ . -",
    path_patterns={"event": f"^{EVENT_SUFFIX.pattern}$"},
))  # fmt: skip
def receive_event(token: str, event: str) -> tuple[Response, int]:
    """The same as `receive`, the suffix naming the trigger that fired."""
    if not EVENT_SUFFIX.fullmatch(event):
        raise ClientError(
            400, "invalid_event_suffix",
            "The inbound URL's event suffix must be 1 to 64 of a-z, 0-9, _, . and -",
            details={"fields": ["event"]},
        )  # fmt: skip
    return _receive(token, event)


def _receive(token: str, event: str | None) -> tuple[Response, int]:
    # The body is read before a database connection is taken: reading it waits on the sender's
    # socket (a greenlet switch under gevent), and a connection held across that wait made
    # the pool open and close overflow connections under a burst of webhooks.
    raw_body = request.get_data(cache=False)
    digest = crypto.hash_token(token)
    with storage.autocommit(runtime().engine) as db:  # Core only: the hot path
        on_postgres = db.dialect.name == "postgresql"
        done = _as_known(db, digest, raw_body, event) if on_postgres else None
        if done is None:
            source = _live_source(db, digest)
            try:
                done = source, _ingest(db, source, raw_body, event)
            except IngestRejected:
                db.commit()  # the rejection is recorded, for the source's events
                raise
            if on_postgres:
                KNOWN.remember(digest, source)
        db.commit()
    source, result = done
    if result.schedule_sync:
        service(SyncTasks).schedule(source.connection_id, settings().sync_debounce_s)
    body = {"status": result.status, "event_id": result.event_id, "changes": result.changes}
    return jsonify(body), 202 if result.status == "accepted" else 200


KNOWN = sources.KnownSources()  # this process's


def _as_known(
    db: DBConnection, digest: str, raw_body: bytes, event: str | None
) -> tuple[sources.InboundTarget, IngestResult] | None:
    """PostgreSQL: the request run on the source this process remembers for `digest`, without
    looking it up (one round trip less); its write is guarded instead. None when the source is
    not remembered, or may have changed: then it is looked up and the request run again."""
    source = KNOWN.get(digest)
    if source is None:
        return None
    attribute(source.connection_id)
    try:
        return source, _ingest(db, source, raw_body, event, known_digest=digest)
    except NotAsKnown:
        KNOWN.forget(digest)
        return None


def _live_source(db: DBConnection, digest: str) -> sources.InboundTarget:
    """The inbound URL's source, read now, if webhooks may still be stored for it.

    Raises:
        NotFound: no such inbound URL.
        ClientError: 410, the source was deleted or its connection revoked.
    """
    source = sources.find_by_digest(db, digest)
    if source is None:
        raise NotFound("Unknown inbound URL")
    attribute(source.connection_id)  # its activity counts for the source's connection
    if source.state != "active":
        raise ClientError(410, "source_deleted", "This inbound URL was deleted")
    if source.connection_revoked:  # its documents could never be sent: tell the sender
        raise ClientError(410, "connection_revoked", "This inbound URL's connection was revoked")
    return source


def _ingest(
    db: DBConnection, source: sources.InboundTarget, raw_body: bytes, event: str | None,
    known_digest: str | None = None,
) -> IngestResult:  # fmt: skip
    config = settings()
    return ingest(
        db, runtime().box, source,
        raw_body=raw_body, headers=dict(request.headers),
        method=request.method, path=request.full_path.rstrip("?"),
        debounce_s=config.sync_debounce_s,
        stale_after=timedelta(seconds=config.sync_stale_after_s),
        route_event=event, known_digest=known_digest,
    )  # fmt: skip
