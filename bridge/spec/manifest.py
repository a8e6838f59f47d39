"""manifest.json: the platform-neutral description every integration is wired from.

It is generated from the registry's schemas and the routes' declarations, never by hand:
`flask --app bridge manifest` writes it; a test regenerates it and fails on any difference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, fields, validate

from bridge.operation import Action, Trigger
from bridge.web.api import endpoint_of

if TYPE_CHECKING:
    from flask import Flask

VERSION = "0.1.0"
SOURCES_PATH = "/v1/sources"
MANIFEST_PATH = Path(__file__).resolve().parents[2] / "manifest.json"
TYPE_NAMES = {
    fields.String: "string",
    fields.Url: "string",
    fields.Email: "string",
    fields.Integer: "integer",
    fields.Float: "number",
    fields.Boolean: "boolean",
    fields.Dict: "object",
    fields.Nested: "object",
    fields.List: "array",
}
AUTHENTICATION = {
    "type": "bearer",
    "header": "Authorization",
    "scheme": "Bearer",
    "alternative_header": "X-API-Key",
    "obtain": {"method": "POST", "path": "/v1/connections", "fields": ["api_key", "label", "plan"]},
    "test": {"method": "GET", "path": "/v1/me"},
    "connection_label": "{{label}} ({{organization.name}})",
}
DROPDOWNS = (
    {"key": "agents", "path": "/v1/agents", "value": "id", "label": "name"},
    {"key": "datastores", "path": "/v1/datastores", "value": "id", "label": "name"},
)
DROPDOWN_FIELDS = {"agent_id": "agents", "datastore_id": "datastores"}


def describe_fields(schema: Schema) -> list[dict[str, Any]]:
    """Describe a schema's fields for platform UIs: name, type, required, help, choices."""
    described = []
    for name, field in schema.fields.items():
        item: dict[str, Any] = {
            "key": name,
            "type": _type_name(field),
            "required": field.required,
        }
        if field.metadata.get("description"):
            item["help_text"] = field.metadata["description"]
        for validator in field.validators:
            if isinstance(validator, validate.OneOf):
                item["choices"] = list(validator.choices)
        if name in DROPDOWN_FIELDS:
            item["dynamic"] = DROPDOWN_FIELDS[name]
        if isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
            item["children"] = describe_fields(field.schema)
        if isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
            item["children"] = describe_fields(field.inner.schema)
        described.append(item)
    return described


def _type_name(field: fields.Field[Any]) -> str:
    for cls in type(field).__mro__:
        if cls in TYPE_NAMES:
            return TYPE_NAMES[cls]
    return "string"


def build_manifest(
    actions: tuple[Action, ...], triggers: tuple[Trigger, ...], sources: type[Schema]
) -> dict[str, Any]:
    """The platform-neutral description every integration (Zapier, Make, n8n...) is wired from."""
    return {
        "name": "ZappWay Bridge",
        "version": VERSION,
        "description": "Query ZappWay agents and keep datastores in sync from no-code tools.",
        "authentication": AUTHENTICATION,
        "actions": [_describe_action(action) for action in actions],
        "triggers": [_describe_trigger(trigger) for trigger in triggers],
        "dropdowns": list(DROPDOWNS),
        "jobs": {"path": "/v1/jobs/{job_id}", "method": "GET"},
        "inbound": _describe_inbound(sources),
        "errors": {
            "envelope": {"error": {"code": "string", "message": "string"}},
            "retry_statuses": [429, 502, 503, 504],
            "reauth_statuses": [401],
        },
    }


def _describe_action(action: Action) -> dict[str, Any]:
    return {
        "key": action.key,
        "noun": action.noun,
        "label": action.label,
        "description": action.description,
        "kind": action.kind,
        "method": "POST",
        "path": f"/v1/actions/{action.key}",
        "idempotency_header": "Idempotency-Key",
        "supports_callback": action.long_running,
        "input_fields": describe_fields(action.input_schema()),
        "output_fields": describe_fields(action.output_schema()),
        "sample": action.sample,
    }


def _describe_trigger(trigger: Trigger) -> dict[str, Any]:
    return {
        "key": trigger.key,
        "noun": trigger.noun,
        "label": trigger.label,
        "description": trigger.description,
        "polling": {
            "method": "GET",
            "path": f"/v1/triggers/{trigger.key}",
            "order": "newest_first",
            "dedupe_key": "id",
            "params": describe_fields(trigger.params_schema()),
        },
        "hook": {
            "event": trigger.event_type,
            "subscribe": {
                "method": "POST",
                "path": "/v1/hooks",
                "target_field": "target_url",
                "required_fields": ["target_url", "agent_id"],
                "answer": {"id": "id", "secret": "secret"},
            },
            "unsubscribe": {"method": "DELETE", "path": "/v1/hooks/{id}"},
            "list": {
                "method": "GET",
                "path": f"/v1/triggers/{trigger.key}",
                "params": {"sample": 1},
            },
            "signature": "standard-webhooks v1 (webhook-id, webhook-timestamp, webhook-signature)",
        },
        "output_fields": describe_fields(trigger.output_schema()),
        "sample": trigger.sample,
    }


def _describe_inbound(create: type[Schema]) -> dict[str, Any]:
    """CMS webhook sources: how to create one and which senders the bridge can verify (the
    provider field of the route's own schema lists them, with their labels)."""
    schema = create()
    labels: dict[str, str] = schema.fields["provider"].metadata.get("labels", {})
    return {
        "create": {"method": "POST", "path": SOURCES_PATH,
                   "input_fields": describe_fields(schema),
                   "answer": {"url": "inbound_url", "secret": "secret"}},
        "events": {"method": "GET", "path": "/v1/sources/{id}/events"},
        "replay": {"method": "POST", "path": "/v1/sources/{id}/replay"},
        "providers": [{"key": key, "label": label} for key, label in labels.items()],
    }  # fmt: skip


def source_schema(app: Flask) -> type[Schema]:
    """The body schema `POST /v1/sources` declares."""
    view = app.view_functions[app.url_map.bind("").match(SOURCES_PATH, "POST")[0]]
    declared = endpoint_of(view)
    assert declared is not None and isinstance(declared.body, type)
    return declared.body


def manifest_text(app: Flask, actions: tuple[Action, ...], triggers: tuple[Trigger, ...]) -> str:
    manifest = build_manifest(actions, triggers, source_schema(app))
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
