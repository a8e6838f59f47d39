"""HTTP API for connections: register, auth test (`/v1/me`), rotate, revoke, admin list."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import RAISE, Schema, fields, validate

from bridge.connections import service as connections
from bridge.infra.models import Connection
from bridge.infra.storage import get_session
from bridge.upstream.errors import UpstreamAuthError, UpstreamForbidden
from bridge.web import context
from bridge.web.auth import current_connection, is_admin, require_admin, require_connection
from bridge.web.errors import APIError

bp = Blueprint("connections", __name__)
PLAN_PATTERN = r"^(free|pro|[1-9][0-9]{0,5})$"


class CreateConnectionIn(Schema):
    class Meta:
        unknown = RAISE

    api_key = fields.String(required=True, validate=validate.Length(min=1, max=512))
    label = fields.String(validate=validate.Length(max=200), load_default=None)
    plan = fields.String(
        validate=validate.Regexp(PLAN_PATTERN, error="must be free, pro or a number per minute"),
        load_default=None,
    )


class RotateKeyIn(Schema):
    class Meta:
        unknown = RAISE

    api_key = fields.String(required=True, validate=validate.Length(min=1, max=512))


def json_object() -> dict[str, Any]:
    """Return the JSON object body (400 when it is missing, malformed or not an object)."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise APIError(400, "malformed_json", "Request body must be a JSON object")
    return payload


def json_body(schema: Schema) -> dict[str, Any]:
    """Parse and validate the JSON body (400 malformed, 422 naming the field)."""
    data: dict[str, Any] = schema.load(json_object())
    return data


def _verified_org(api_key: str, plan: str) -> Any:
    """Check a ZappWay key upstream; a rejected key is the caller's input problem (422)."""
    try:
        return connections.verify_key(context.upstream_pool(), context.settings(), api_key, plan)
    except (UpstreamAuthError, UpstreamForbidden) as exc:
        raise APIError(
            422, "api_key_rejected", "ZappWay rejected this API key (invalid or revoked)",
            fields=["api_key"],
        ) from exc  # fmt: skip


@bp.post("/v1/connections")
def create_connection() -> tuple[Response, int]:
    """Register a ZappWay key; the token in the answer is shown only this once."""
    settings = context.settings()
    if not settings.allow_self_registration and not is_admin():
        raise APIError(403, "registration_closed", "Self-registration is off; ask the operator")
    data = json_body(CreateConnectionIn())
    api_key = connections.normalise_api_key(data["api_key"])
    plan = data["plan"] or settings.default_plan
    org = _verified_org(api_key, plan)
    session = get_session()
    issued = connections.create(
        session, context.secret_box(), org, api_key=api_key, label=data["label"], plan=plan
    )
    session.commit()
    body = connections.describe(issued.connection, settings)
    secrets_once = {"token": issued.token, "signing_secret": issued.signing_secret}
    return jsonify({**body, **secrets_once}), 201


@bp.get("/v1/me")
@require_connection
def me() -> Response:
    """The auth test platforms call on connect: answered from storage, so it is fast."""
    connection = current_connection()
    if request.args.get("verify") in ("1", "true"):
        _reverify(connection)
    return jsonify(connections.describe(connection, context.settings()))


def _reverify(connection: Connection) -> None:
    session = get_session()
    try:
        connections.open_client(
            session,
            context.secret_box(),
            context.upstream_pool(),
            context.settings(),
            connection.id,
        ).whoami()
    except UpstreamAuthError:
        connections.mark_key_rejected(connection)
        session.commit()
        raise


@bp.post("/v1/me/rotate-key")
@require_connection
def rotate_key() -> Response:
    """Swap the stored ZappWay key after proving the new one; on failure nothing changes."""
    connection = current_connection()
    new_key = connections.normalise_api_key(json_body(RotateKeyIn())["api_key"])
    org = _verified_org(new_key, connection.plan)
    if connection.upstream_org_id and org.id != connection.upstream_org_id:
        raise APIError(
            422, "different_organization",
            "The new key belongs to another ZappWay organization; create a new connection",
            fields=["api_key"],
        )  # fmt: skip
    connections.replace_api_key(connection, context.secret_box(), org, new_key)
    get_session().commit()
    return jsonify(connections.describe(connection, context.settings()))


@bp.post("/v1/me/rotate-token")
@require_connection
def rotate_token() -> Response:
    """Issue a new connection token; the old one fails from the next request on."""
    connection = current_connection()
    token = connections.rotate_token(connection)
    get_session().commit()
    return jsonify({**connections.describe(connection, context.settings()), "token": token})


@bp.post("/v1/me/rotate-signing-secret")
@require_connection
def rotate_signing_secret() -> Response:
    """Issue a new secret for verifying callbacks and hook deliveries (shown once)."""
    connection = current_connection()
    secret = connections.rotate_signing_secret(connection, context.secret_box())
    get_session().commit()
    return jsonify({"id": connection.id, "signing_secret": secret})


@bp.delete("/v1/me")
@require_connection
def revoke_me() -> tuple[str, int]:
    """Revoke this connection: its token and any background work stop at once."""
    connections.revoke(current_connection())
    get_session().commit()
    return "", 204


@bp.get("/v1/admin/connections")
@require_admin
def admin_list() -> Response:
    include_revoked = request.args.get("include_revoked") in ("1", "true")
    rows = connections.list_all(get_session(), include_revoked=include_revoked)
    return jsonify([connections.describe(row, context.settings()) for row in rows])


@bp.delete("/v1/admin/connections/<connection_id>")
@require_admin
def admin_revoke(connection_id: str) -> tuple[str, int]:
    session = get_session()
    connection = connections.find(session, connection_id)
    if connection is None:
        raise APIError(404, "not_found", "No such connection")
    connections.revoke(connection)
    session.commit()
    return "", 204
