"""HTTP routes for inbound CMS webhooks: manage sources, receive webhooks, show what happened.

`POST /in/<token>` is the URL pasted into the CMS: it verifies, stores and answers 202 within
milliseconds whatever state ZappWay is in. `/v1/sources...` are the connection's management and
visibility endpoints.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from marshmallow import ValidationError, fields, validate, validates_schema
from sqlalchemy import select, update

from bridge.connections.views import json_object
from bridge.infra import netguard
from bridge.infra.models import InboundEvent, PendingDocument, Source
from bridge.infra.storage import get_session
from bridge.runtime import Runtime
from bridge.schemas import ToolInput, zappway_id
from bridge.sync import drain as syncer
from bridge.sync import sources
from bridge.sync.ingest import IngestRejected, ingest
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.source_config import check_secret, resolve
from bridge.sync.store import ack_connection
from bridge.web import context
from bridge.web.auth import current_connection, require_connection
from bridge.web.errors import APIError
from bridge.web.ownership import owned, owned_rows

bp = Blueprint("sources", __name__)
EVENTS_PAGE = 100
EVENT_STATUSES = ("accepted", "rejected", "unmappable")


class CreateSourceIn(ToolInput):
    provider = fields.String(required=True, validate=validate.OneOf(tuple(PROVIDERS)))
    datastore_id = zappway_id(required=True)
    secret = fields.String(validate=validate.Length(min=8, max=500))
    mapping = fields.Dict(keys=fields.String(), metadata={
        "description": "Where the payload keeps id, title, text, url, updated time and event "
        "(JMESPath or header:<name>), for the generic, Sanity and Standard Webhooks providers."
    })  # fmt: skip
    config = fields.Dict(keys=fields.String(), metadata={
        "description": "Provider options: the generic provider's header, algorithm, encoding, "
        "prefix, content, timestamp_header, timestamp_unit, window_s and dedupe; token_header "
        "for Directus/Strapi."
    })  # fmt: skip
    credentials = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "CMS read credentials for thin payloads: {token, base_url}. Stored "
        "encrypted, never shown again."
    })  # fmt: skip

    @validates_schema
    def options_are_valid(self, data: dict[str, Any], **_kwargs: Any) -> None:
        provider = PROVIDERS[data["provider"]]
        try:
            resolve(provider, _options(data))
            if "secret" in data:
                check_secret(provider, data["secret"])
        except ValueError as exc:
            raise ValidationError(str(exc)[:200], getattr(exc, "field", "config")) from exc
        credentials = data.get("credentials") or {}
        unknown = set(credentials) - {"token", "base_url"}
        if unknown:
            raise ValidationError(f"unknown credential {sorted(unknown)[0]!r}", "credentials")
        if "base_url" in credentials:
            try:
                netguard.check_url_shape(credentials["base_url"])
            except netguard.UnsafeTarget as exc:
                raise ValidationError(f"base_url: {exc}", "credentials") from exc


class EventsQuery(ToolInput):
    before = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "Only events older than this event id: the next page starts before "
        "the last id of this one."
    })  # fmt: skip
    limit = fields.Integer(load_default=EVENTS_PAGE, validate=validate.Range(1, EVENTS_PAGE))
    status = fields.String(validate=validate.OneOf(EVENT_STATUSES))


class RotateSecretIn(ToolInput):
    secret = fields.String(validate=validate.Length(min=8, max=500))


def _options(data: dict[str, Any]) -> dict[str, Any]:
    """The stored options: `config`, with `mapping` given at the top level folded in."""
    options = dict(data.get("config") or {})
    if "mapping" in data:
        options["mapping"] = data["mapping"]
    return options


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["runtime"]
    return runtime


@bp.post("/v1/sources")
@require_connection
def create_source() -> tuple[Response, int]:
    """Create an inbound source; its URL and signing secret are returned (the secret only now)."""
    data = CreateSourceIn().load(json_object())
    session = get_session()
    created = sources.create(
        session, context.secret_box(), current_connection().id,
        provider=data["provider"], datastore_id=data["datastore_id"],
        secret=data.get("secret"), config=_options(data),
        credentials=data.get("credentials") or {},
    )  # fmt: skip
    session.commit()
    body = sources.describe(created.source, context.secret_box())
    inbound_url = request.host_url.rstrip("/") + body["inbound_path"]
    return jsonify({**body, "inbound_url": inbound_url, "secret": created.secret}), 201


def _own(source_id: str) -> Source:
    return owned(Source, source_id, "source")


@bp.get("/v1/sources")
@require_connection
def list_sources() -> Response:
    return jsonify([sources.describe(row, context.secret_box()) for row in owned_rows(Source)])


@bp.delete("/v1/sources/<source_id>")
@require_connection
def delete_source(source_id: str) -> tuple[str, int]:
    """Delete a source: its URL answers 410 from now on, so senders that honour it stop.

    Documents still waiting to be sent are cancelled: the user asked for the sync to stop.
    """
    source = _own(source_id)
    source.state = "deleted"
    session = get_session()
    session.execute(
        update(PendingDocument)
        .where(PendingDocument.source_id == source.id)
        .where(PendingDocument.state == "pending")
        .values(state="cancelled", last_error="source deleted")
    )
    session.commit()
    return "", 204


@bp.post("/v1/sources/<source_id>/rotate-secret")
@require_connection
def rotate_secret(source_id: str) -> Response:
    """New signing secret; the old one keeps verifying for 24 hours."""
    source = _own(source_id)
    body = request.get_json(silent=True) if request.get_data() else {}
    if not isinstance(body, dict):
        raise APIError(400, "malformed_json", "Request body must be a JSON object")
    chosen: str | None = RotateSecretIn().load(body).get("secret")
    if chosen is not None:
        try:
            check_secret(PROVIDERS[source.provider], chosen)
        except ValueError as exc:
            raise ValidationError({"secret": [str(exc)]}) from exc
    secret = sources.rotate_secret(source, context.secret_box(), chosen)
    get_session().commit()
    return jsonify({"id": source.id, "secret": secret})


@bp.post("/v1/sources/<source_id>/replay")
@require_connection
def replay(source_id: str) -> tuple[Response, int]:
    """Send the source's dead-lettered documents again."""
    source = _own(source_id)
    count = syncer.replay(_runtime(), source.id)
    session = get_session()
    stale_after = timedelta(seconds=context.settings().sync_stale_after_s)
    if syncer.claim_sync(session, source.connection_id, 0, stale_after):
        session.commit()
        _schedule(source.connection_id, 0)
    return jsonify({"replayed": count}), 202


@bp.get("/v1/sources/<source_id>/events")
@require_connection
def events(source_id: str) -> Response:
    """Each received event, its verification result, and the fate of each document it carried;
    newest first, a page of `limit` at a time (`before` pages back, `status` filters)."""
    source = _own(source_id)
    query = EventsQuery().load(request.args.to_dict())
    session = get_session()
    page = select(InboundEvent).where(InboundEvent.source_id == source.id)
    if "before" in query:
        page = page.where(InboundEvent.id < query["before"])
    if "status" in query:
        page = page.where(InboundEvent.status == query["status"])
    rows = session.scalars(page.order_by(InboundEvent.id.desc()).limit(query["limit"])).all()
    cms_ids = {c["cms_id"] for row in rows for c in json.loads(row.changes_json)}
    documents = {
        doc.cms_id: doc
        for doc in session.scalars(
            select(PendingDocument)
            .where(PendingDocument.source_id == source.id)
            .where(PendingDocument.cms_id.in_(cms_ids))
        )
    }
    return jsonify([_event_view(row, documents) for row in rows])


def _event_view(row: InboundEvent, documents: dict[str, PendingDocument]) -> dict[str, Any]:
    changes = []
    for change in json.loads(row.changes_json):
        doc = documents.get(change["cms_id"])
        fate: dict[str, Any] = {"state": "unknown"}
        if doc is not None and doc.version > change["version"]:
            fate = {"state": "superseded", "by_version": doc.version}
        elif doc is not None:
            fate = {"state": doc.state, "upstream_id": doc.upstream_id, "reason": doc.last_error}
        changes.append({**change, **fate})
    return {
        "id": row.id,
        "received_at": row.received_at.isoformat(),
        "status": row.status,
        "reason": row.reason,
        "delivery_key": row.delivery_key,
        "documents": changes,
    }


@bp.post("/in/<token>")
def receive(token: str) -> tuple[Response, int]:
    """The URL a CMS calls. 202 once stored; 401/400 when verification fails; 410 once the
    source is deleted or its connection revoked."""
    settings = context.settings()
    with ack_connection(current_app.extensions["engine"]) as db:  # Core only: the hot path
        source = sources.find_by_token(db, token)
        if source is None:
            raise APIError(404, "not_found", "Unknown inbound URL")
        if source.state != "active":
            raise APIError(410, "source_deleted", "This inbound URL was deleted")
        if source.connection_revoked:  # its documents could never be sent: tell the sender
            raise APIError(410, "connection_revoked", "This inbound URL's connection was revoked")
        try:
            result = ingest(
                db, context.secret_box(), source,
                raw_body=request.get_data(cache=False), headers=dict(request.headers),
                method=request.method, path=request.full_path.rstrip("?"),
                debounce_s=settings.sync_debounce_s,
                stale_after=timedelta(seconds=settings.sync_stale_after_s),
            )  # fmt: skip
        except IngestRejected as exc:
            db.commit()  # the rejection is recorded, for the source's events
            raise APIError(exc.status, exc.reason, f"Webhook rejected: {exc.reason}") from exc
        db.commit()
    if result.schedule_sync:
        _schedule(source.connection_id, settings.sync_debounce_s)
    body = {"status": result.status, "event_id": result.event_id, "changes": result.changes}
    return jsonify(body), 202 if result.status == "accepted" else 200


def _schedule(connection_id: str, delay: float) -> None:
    current_app.extensions["tasks"]["schedule_sync"](connection_id, delay)
