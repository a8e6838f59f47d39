"""OpenAPI 3.1 for the bridge, built with apispec from the registry's marshmallow schemas.

Every status a route can answer is listed, so contract testers (schemathesis) can hold the
bridge to it: the same error envelope everywhere, 401 for credentials, 429 with Retry-After.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from bridge.api_connections import CreateConnectionIn, RotateKeyIn
from bridge.api_sources import CreateSourceIn, EventsQuery
from bridge.api_triggers import SubscribeIn
from bridge.manifest import VERSION
from bridge.operation import Action, Trigger


class ErrorBody(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields_ = fields.List(fields.String(), data_key="fields")
    upstream_status = fields.Integer()
    job_id = fields.String()
    status_url = fields.String()


class ErrorEnvelope(Schema):
    error = fields.Nested(ErrorBody, required=True)


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
    token = fields.String()
    signing_secret = fields.String()


class JobOut(Schema):
    job_id = fields.String(required=True)
    action = fields.String(required=True)
    status = fields.String(required=True)
    result = fields.Raw()
    error = fields.Dict()
    callback = fields.Dict()


class JobAccepted(Schema):
    job_id = fields.String(required=True)
    status = fields.String(required=True)
    status_url = fields.String(required=True)


class DropdownItem(Schema):
    id = fields.String()
    name = fields.String()
    label = fields.String()
    value = fields.String()


ERROR_TEXT = {
    400: "Malformed JSON",
    401: "Missing, malformed, unknown or revoked credentials, or ZappWay rejected the stored key",
    402: "ZappWay plan quota exhausted",
    403: "ZappWay refused access",
    404: "Not found",
    410: "Gone: the inbound source was deleted",
    409: "Idempotency-Key still in progress, or the document is being written",
    413: "Body too large",
    422: "Invalid input (the message names the field)",
    429: "Rate limited: see Retry-After",
    502: "ZappWay failed",
    503: "ZappWay unreachable",
    504: "ZappWay too slow (actions: a job id to poll)",
}
AUTHED_ERRORS = (400, 401, 402, 403, 404, 409, 413, 422, 429, 502, 503, 504)
UNAUTHED_ERRORS = (400, 403, 413, 422, 429, 502, 503, 504)


def _errors(statuses: tuple[int, ...]) -> dict[int, Any]:
    return {status: _json(ERROR_TEXT[status], "ErrorEnvelope") for status in statuses}


def _json(description: str, schema: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ok(schema: Any, description: str = "OK") -> dict[str, Any]:
    return _json(description, schema)


def _body(schema: Any) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _param(name: str, where: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema}


def _operation(
    summary: str, responses: dict[int, Any], secured: bool = True, **extra: Any
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if secured:
        operation["security"] = SECURITY
    return operation


SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
LIST_PARAMS = [
    _param("page", "query", {"type": "integer", "minimum": 1, "maximum": 10_000}),
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}),
    _param("format", "query", {"type": "string", "enum": ["items", "options"]}),
]
COMPONENTS = (
    ("ErrorEnvelope", ErrorEnvelope),
    ("Connection", ConnectionOut),
    ("Job", JobOut),
    ("JobAccepted", JobAccepted),
    ("DropdownItem", DropdownItem),
    ("CreateConnection", CreateConnectionIn),
    ("RotateKey", RotateKeyIn),
)


def build_openapi(
    actions: tuple[Action, ...], triggers: tuple[Trigger, ...] = ()
) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document for every route the bridge serves."""
    spec = APISpec(
        title="ZappWay Bridge",
        version=VERSION,
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name)],
        info={"description": "Bridge between no-code automation tools and the ZappWay API."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme(
        "apiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    )
    for name, schema in COMPONENTS:
        spec.components.schema(name, schema=schema)
    _connection_paths(spec)
    for action in actions:
        _action_path(spec, action)
    for trigger in triggers:
        _trigger_paths(spec, trigger)
    _hook_paths(spec)
    _source_paths(spec)
    job_id = _param("job_id", "path", {"type": "string"}, required=True)
    spec.path(
        path="/v1/jobs/{job_id}",
        operations={
            "get": _operation(
                "Poll a job", {200: _ok("Job"), **_errors((401, 404))}, parameters=[job_id]
            )
        },
    )
    option = {
        "type": "object",
        "required": ["label", "value"],
        "properties": {"label": {"type": "string"}, "value": {"type": "string"}},
    }
    listed = {"anyOf": [{"$ref": "#/components/schemas/DropdownItem"}, option]}  # format=options
    page = _ok({"type": "array", "items": listed})
    page["headers"] = {
        "X-Total-Count": {
            "description": "Items on all pages (pages count from 1)",
            "schema": {"type": "integer"},
        }
    }
    items = {200: page, **_errors(AUTHED_ERRORS)}
    for noun in ("agents", "datastores"):
        operation = _operation(f"Dropdown source: {noun}", items, parameters=LIST_PARAMS)
        spec.path(path=f"/v1/{noun}", operations={"get": operation})
    probe = {200: _ok({"type": "object"}), 503: _ok({"type": "object"}, "Not ready")}
    for path, summary in (("/healthz", "Liveness"), ("/readyz", "Readiness")):
        spec.path(path=path, operations={"get": _operation(summary, probe, secured=False)})
    return spec.to_dict()


def _connection_paths(spec: APISpec) -> None:
    spec.path(
        path="/v1/connections",
        operations={
            "post": _operation(
                "Register a ZappWay API key; the token is shown once",
                {201: _ok("Connection", "Created"), **_errors(UNAUTHED_ERRORS)},
                secured=False,
                requestBody=_body("CreateConnection"),
            )
        },
    )
    verify = _param("verify", "query", {"type": "string", "enum": ["0", "1", "true", "false"]})
    spec.path(
        path="/v1/me",
        operations={
            "get": _operation(
                "Auth test",
                {200: _ok("Connection"), **_errors((401, 402, 403, 429, 502, 503, 504))},
                parameters=[verify],
            ),
            "delete": _operation(
                "Revoke this connection", {204: {"description": "Revoked"}, **_errors((401,))}
            ),
        },
    )
    spec.path(
        path="/v1/me/rotate-key",
        operations={
            "post": _operation(
                "Swap the stored ZappWay key (verified first)",
                {200: _ok("Connection"), **_errors((400, 401, 413, 422, 429, 502, 503, 504))},
                requestBody=_body("RotateKey"),
            )
        },
    )
    for path, summary in (
        ("/v1/me/rotate-token", "New connection token"),
        ("/v1/me/rotate-signing-secret", "New signing secret"),
    ):
        responses = {200: _ok({"type": "object"}), **_errors((401,))}
        spec.path(path=path, operations={"post": _operation(summary, responses)})


def _action_path(spec: APISpec, action: Action) -> None:
    input_name = f"{_camel(action.key)}Input"
    output_name = f"{_camel(action.key)}Output"
    spec.components.schema(input_name, schema=action.input_schema)
    spec.components.schema(output_name, schema=action.output_schema)
    output: Any = {"type": "array", "items": output_name} if action.many else output_name
    responses: dict[int, Any] = {200: _ok(output), **_errors(AUTHED_ERRORS)}
    if action.long_running:
        responses[202] = _ok("JobAccepted", "Accepted: the result goes to callback_url")
    idempotency = _param("Idempotency-Key", "header", {"type": "string", "minLength": 1})
    operation = _operation(
        action.label,
        responses,
        operationId=action.key,
        description=action.description,
        parameters=[idempotency],
        requestBody=_body(input_name),
    )
    spec.path(path=f"/v1/actions/{action.key}", operations={"post": operation})


def _trigger_paths(spec: APISpec, trigger: Trigger) -> None:
    item_name = f"{_camel(trigger.key)}Item"
    spec.components.schema(item_name, schema=trigger.output_schema)
    params = [
        _param(name, "query", schema, required=field.required)
        for name, field in trigger.params_schema().fields.items()
        for schema in [_query_schema(field)]
    ]
    responses = {200: _ok({"type": "array", "items": item_name}), **_errors(AUTHED_ERRORS)}
    operation = _operation(trigger.label, responses, operationId=f"poll_{trigger.key}",
                           description=trigger.description, parameters=params)  # fmt: skip
    spec.path(path=f"/v1/triggers/{trigger.key}", operations={"get": operation})


def _query_schema(field: Any) -> dict[str, Any]:
    """JSON Schema of a query parameter (the plugin's field2property: types, ranges, choices
    and defaults)."""
    from marshmallow import fields as mfields
    from marshmallow import missing, validate

    default = {} if field.load_default is missing else {"default": field.load_default}
    if isinstance(field, mfields.Integer):
        low = next((v.min for v in field.validators if hasattr(v, "min")), None)
        high = next((v.max for v in field.validators if hasattr(v, "max")), None)
        return {"type": "integer", **({"minimum": low} if low is not None else {}),
                **({"maximum": high} if high is not None else {}), **default}  # fmt: skip
    if isinstance(field, mfields.Boolean):
        return {"type": "boolean", **default}
    if isinstance(field, mfields.DateTime):
        return {"type": "string", "format": "date-time"}
    choices = next((v.choices for v in field.validators if isinstance(v, validate.OneOf)), None)
    if choices is not None:
        return {"type": "string", "enum": list(choices), **default}
    return {"type": "string", "pattern": "^[A-Za-z0-9@_.:-]{1,100}$", **default}


def _hook_paths(spec: APISpec) -> None:
    spec.components.schema("Subscribe", schema=SubscribeIn)
    hook_id = _param("hook_id", "path", {"type": "string"}, required=True)
    created = {201: _ok({"type": "object"}, "Created"), **_errors((400, 401, 413, 422))}
    spec.path(path="/v1/hooks", operations={
        "post": _operation("Subscribe a REST hook (secret shown once)", created,
                           requestBody=_body("Subscribe")),
        "get": _operation("List hooks", {200: _ok({"type": "array", "items": {"type": "object"}}),
                                         **_errors((401,))}),
    })  # fmt: skip
    spec.path(path="/v1/hooks/{hook_id}", operations={
        "get": _operation("A hook and its deliveries", {200: _ok({"type": "object"}),
                          **_errors((401, 404))}, parameters=[hook_id]),
        "delete": _operation("Unsubscribe", {204: {"description": "Deleted"},
                             **_errors((401, 404))}, parameters=[hook_id]),
    })  # fmt: skip
    since = _param("since", "query", {"type": "string", "format": "date-time"})
    spec.path(path="/v1/hooks/{hook_id}/replay", operations={
        "post": _operation("Send events again", {202: _ok({"type": "object"}, "Queued"),
                           **_errors((401, 404, 422))}, parameters=[hook_id, since]),
    })  # fmt: skip


def _source_paths(spec: APISpec) -> None:
    spec.components.schema("CreateSource", schema=CreateSourceIn)
    source_id = _param("source_id", "path", {"type": "string"}, required=True)
    obj, objs = _ok({"type": "object"}), _ok({"type": "array", "items": {"type": "object"}})
    spec.path(path="/v1/sources", operations={
        "post": _operation("Create an inbound CMS source (URL and secret shown once)",
                           {201: obj, **_errors((400, 401, 413, 422))},
                           requestBody=_body("CreateSource")),
        "get": _operation("List inbound sources", {200: objs, **_errors((401,))}),
    })  # fmt: skip
    spec.path(path="/v1/sources/{source_id}", operations={
        "delete": _operation("Delete a source (its URL answers 410)",
                             {204: {"description": "Deleted"}, **_errors((401, 404))},
                             parameters=[source_id]),
    })  # fmt: skip
    page = [_param(name, "query", _query_schema(field))
            for name, field in EventsQuery().fields.items()]  # fmt: skip
    spec.path(path="/v1/sources/{source_id}/events", operations={
        "get": _operation("Received events and each document's fate, newest first",
                          {200: objs, **_errors((401, 404, 422))},
                          parameters=[source_id, *page]),
    })  # fmt: skip
    for suffix, summary, ok in (
        ("rotate-secret", "New signing secret (the old one verifies for 24 h)", {200: obj}),
        ("replay", "Send dead-lettered documents again", {202: obj}),
    ):
        spec.path(path=f"/v1/sources/{{source_id}}/{suffix}", operations={
            "post": _operation(summary, {**ok, **_errors((401, 404))}, parameters=[source_id]),
        })  # fmt: skip
    token = _param("token", "path", {"type": "string"}, required=True)
    spec.path(path="/in/{token}", operations={
        "post": _operation(
            "Inbound CMS webhook (the URL pasted into the CMS)",
            {200: obj, 202: _ok({"type": "object"}, "Stored"),
             **_errors((400, 401, 404, 410, 413, 422))},
            secured=False, parameters=[token],
            requestBody={"content": {"application/json": {"schema": {}}}},
        ),
    })  # fmt: skip


def _schema_name(schema: Any) -> str:
    """Name nested schemas after their module too (two modules may both define `Contact`)."""
    cls = schema if isinstance(schema, type) else type(schema)
    module = cls.__module__
    prefix = (
        _camel(module.rsplit(".", 1)[-1]) if module.startswith(("actions.", "triggers.")) else ""
    )
    return prefix + cls.__name__


def _camel(key: str) -> str:
    return "".join(part.capitalize() for part in key.split("_"))
