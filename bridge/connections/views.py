"""HTTP API for connections: register, auth test (`/v1/me`), rotate, revoke, admin list."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from bridge.connections import service as connections
from bridge.infra.errors import NotFound
from bridge.web.api import UNAUTHED_ERRORS, UPSTREAM_ERRORS, Answer, Endpoint, endpoint
from bridge.web.auth import current_connection, is_admin, require_admin, require_connection
from bridge.web.body import json_body
from bridge.web.context import get_session, runtime, settings

bp = Blueprint("connections", __name__)
PLAN_PATTERN = r"^(free|pro|[1-9][0-9]{0,5})$"


class Plan(fields.String):
    """`free`, `pro` or requests per minute, the number as a string or a JSON number (the README
    says "or a number": `"plan": 120` was refused as not a string)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


class CreateConnectionIn(Schema):
    class Meta:
        unknown = RAISE

    api_key = fields.String(required=True, validate=validate.Length(min=1, max=512))
    label = fields.String(validate=validate.Length(max=200), load_default=None)
    plan = Plan(
        validate=validate.Regexp(PLAN_PATTERN, error="must be free, pro or a number per minute"),
        load_default=None,
    )


class RotateKeyIn(Schema):
    class Meta:
        unknown = RAISE

    api_key = fields.String(required=True, validate=validate.Length(min=1, max=512))


class MeQuery(Schema):
    class Meta:
        unknown = EXCLUDE  # a platform's cache-buster (`?_=123`) must not fail the auth test

    verify = fields.String(validate=validate.OneOf(("0", "1", "true", "false")), metadata={
        "description": "1 or true: also re-check the stored key at ZappWay"
    })  # fmt: skip


class AdminListQuery(Schema):
    include_revoked = fields.String(validate=validate.OneOf(("0", "1", "true", "false")))


class Organization(Schema):
    id = fields.String(allow_none=True, required=True)
    name = fields.String(allow_none=True, required=True)


class ConnectionOut(Schema):
    id = fields.String(required=True)
    label = fields.String(required=True)
    plan = fields.String(required=True)
    rate_limit_per_minute = fields.Integer(required=True)
    api_key_last4 = fields.String(required=True)
    token_last4 = fields.String(required=True)
    key_status = fields.String(required=True)
    organization = fields.Nested(Organization, required=True)
    created_at = fields.String(required=True)
    revoked_at = fields.String(allow_none=True, required=True)
    token = fields.String(metadata={"description": "Only when created or rotated: shown once"})
    signing_secret = fields.String(metadata={"description": "Only when created: shown once"})


class SigningSecretOut(Schema):
    id = fields.String(required=True)
    signing_secret = fields.String(required=True)


@bp.post("/v1/connections")
@endpoint(Endpoint(
    "Register a ZappWay API key; the token is shown once",
    {201: Answer(ConnectionOut, "Created")}, UNAUTHED_ERRORS, body=CreateConnectionIn,
    secured=False,
))  # fmt: skip
def create_connection() -> tuple[Response, int]:
    """Register a ZappWay key; the token in the answer is shown only this once."""
    if not settings().allow_self_registration and not is_admin():
        raise connections.RegistrationClosed()
    data = json_body(CreateConnectionIn())
    api_key = connections.normalise_api_key(data["api_key"])
    plan = data["plan"] or settings().default_plan
    org = connections.verify_key(runtime(), api_key, plan)
    session = get_session()
    issued = connections.create(
        session, runtime().box, org, api_key=api_key, label=data["label"], plan=plan
    )
    session.commit()
    body = connections.describe(issued.connection, settings())
    secrets_once = {"token": issued.token, "signing_secret": issued.signing_secret}
    return jsonify({**body, **secrets_once}), 201


@bp.get("/v1/me")
@endpoint(Endpoint("Auth test", {200: Answer(ConnectionOut)}, UPSTREAM_ERRORS, query=MeQuery))
@require_connection
def me() -> Response:
    """The auth test platforms call on connect: answered from storage, so it is fast."""
    connection = current_connection()
    if MeQuery().load(request.args.to_dict()).get("verify") in ("1", "true"):
        connections.reverify(runtime(), get_session(), connection)
    return jsonify(connections.describe(connection, settings()))


@bp.post("/v1/me/rotate-key")
@endpoint(Endpoint(
    "Swap the stored ZappWay key (verified first)", {200: Answer(ConnectionOut)},
    (400, 401, 413, 422, 429, 502, 503, 504), body=RotateKeyIn,
))  # fmt: skip
@require_connection
def rotate_key() -> Response:
    """Swap the stored ZappWay key after proving the new one; on failure nothing changes."""
    connection = current_connection()
    new_key = connections.normalise_api_key(json_body(RotateKeyIn())["api_key"])
    org = connections.verify_replacement(runtime(), connection, new_key)
    connections.replace_api_key(connection, runtime().box, org, new_key)
    get_session().commit()
    return jsonify(connections.describe(connection, settings()))


@bp.post("/v1/me/rotate-token")
@endpoint(Endpoint("New connection token (shown once)", {200: Answer(ConnectionOut)}, (401,)))
@require_connection
def rotate_token() -> Response:
    """Issue a new connection token; the old one fails from the next request on."""
    connection = current_connection()
    token = connections.rotate_token(connection)
    get_session().commit()
    return jsonify({**connections.describe(connection, settings()), "token": token})


@bp.post("/v1/me/rotate-signing-secret")
@endpoint(Endpoint("New signing secret (shown once)", {200: Answer(SigningSecretOut)}, (401,)))
@require_connection
def rotate_signing_secret() -> Response:
    """Issue a new secret for verifying callbacks and hook deliveries (shown once)."""
    connection = current_connection()
    secret = connections.rotate_signing_secret(connection, runtime().box)
    get_session().commit()
    return jsonify({"id": connection.id, "signing_secret": secret})


@bp.delete("/v1/me")
@endpoint(Endpoint("Revoke this connection", {204: Answer(None, "Revoked")}, (401,)))
@require_connection
def revoke_me() -> tuple[str, int]:
    """Revoke this connection: its token and any background work stop at once."""
    connections.revoke(current_connection())
    get_session().commit()
    return "", 204


@bp.get("/v1/admin/connections")
@endpoint(Endpoint(
    "Operators: every connection (the admin token)", {200: Answer(ConnectionOut, many=True)},
    (401, 403), query=AdminListQuery, admin=True,
))  # fmt: skip
@require_admin
def admin_list() -> Response:
    include_revoked = request.args.get("include_revoked") in ("1", "true")
    rows = connections.list_all(get_session(), include_revoked=include_revoked)
    return jsonify([connections.describe(row, settings()) for row in rows])


@bp.delete("/v1/admin/connections/<connection_id>")
@endpoint(Endpoint(
    "Operators: revoke a connection (the admin token)", {204: Answer(None, "Revoked")},
    (401, 403, 404), admin=True,
))  # fmt: skip
@require_admin
def admin_revoke(connection_id: str) -> tuple[str, int]:
    session = get_session()
    connection = connections.find(session, connection_id)
    if connection is None:
        raise NotFound("No such connection")
    connections.revoke(connection)
    session.commit()
    return "", 204
