"""manifest.json: the platform-neutral description every integration is wired from.

It is generated from the registry's schemas and the schemas the source and dropdown routes load,
never by hand: `flask --app bridge manifest` writes it; a test regenerates it and fails on any
difference; the Zapier, Make and n8n apps (`bridge.spec.exports`) are rendered from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, validate

from bridge.operation import Action, Trigger
from bridge.runs.dropdowns import ListQuery
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.schemas import CreateSourceIn

VERSION = "0.1.0"
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
    {"key": "agents", "noun": "Agent", "path": "/v1/agents", "value": "id", "label": "name"},
    {"key": "datastores", "noun": "Datastore", "path": "/v1/datastores", "value": "id",
     "label": "name"},
)  # fmt: skip
DROPDOWN_FIELDS = {"agent_id": "agents", "datastore_id": "datastores"}
CALLBACK = {
    "field": "callback_url",
    "accepted": {"status": 202, "job_id": "job_id"},
    "delivery": {
        "method": "POST",
        "body": {"job_id": "string", "action": "string", "status": "succeeded | failed",
                 "result": "the action's output (when succeeded)",
                 "error": "{code, message, status} (when failed)"},
        "signature": "standard-webhooks v1 with the connection's signing_secret; webhook-id is "
                     "the job id",
    },
}  # fmt: skip


def describe_fields(schema: Schema) -> list[dict[str, Any]]:
    """Describe a schema's fields for platform UIs: name, type, required, help, choices."""
    described = []
    for name, field in schema.fields.items():
        # "required" means always present with a value: a field that may be null is not.
        item: dict[str, Any] = {
            "key": name,
            "type": _type_name(field),
            "required": field.required and not field.allow_none,
        }
        if field.allow_none:
            item["nullable"] = True
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
    actions: tuple[Action, ...], triggers: tuple[Trigger, ...] = ()
) -> dict[str, Any]:
    """The platform-neutral description every integration (Zapier, Make, n8n...) is wired from."""
    paging = _dropdown_paging()
    return {
        "name": "ZappWay Bridge",
        "version": VERSION,
        "description": "Query ZappWay agents and keep datastores in sync from no-code tools.",
        "authentication": AUTHENTICATION,
        "actions": [_describe_action(action) for action in actions],
        "triggers": [_describe_trigger(trigger) for trigger in triggers],
        "dropdowns": [{**dropdown, "paging": paging} for dropdown in DROPDOWNS],
        "jobs": {"path": "/v1/jobs/{job_id}", "method": "GET"},
        "inbound": _describe_inbound(),
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
        "callback": CALLBACK if action.long_running else None,
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
                "params_from_input": ["agent_id"],
            },
            "signature": "standard-webhooks v1 (webhook-id, webhook-timestamp, webhook-signature)",
        },
        "output_fields": describe_fields(trigger.output_schema()),
        "sample": trigger.sample,
    }


def _dropdown_paging() -> dict[str, Any]:
    """How the dropdown sources page, read from their query schema (pages count from 1)."""
    fields_ = ListQuery().fields
    page, limit = fields_["page"], fields_["limit"]
    return {
        "page_param": "page",
        "first_page": _range(page).min,
        "limit_param": "limit",
        "default_limit": limit.load_default,
        "max_limit": _range(limit).max,
        "total_header": "X-Total-Count",
        "options_query": {"format": "options"},  # answers [{label, value}]
    }


def _range(field: fields.Field[Any]) -> validate.Range:
    return next(v for v in field.validators if isinstance(v, validate.Range))


def _describe_inbound() -> dict[str, Any]:
    """CMS webhook sources: how to create one and which senders the bridge can verify."""
    return {
        "create": {"method": "POST", "path": "/v1/sources",
                   "input_fields": describe_fields(CreateSourceIn()),
                   "answer": {"url": "inbound_url", "secret": "secret"}},
        "events": {"method": "GET", "path": "/v1/sources/{id}/events"},
        "replay": {"method": "POST", "path": "/v1/sources/{id}/replay"},
        "providers": [{"key": p.key, "label": p.label} for p in PROVIDERS.values()],
    }  # fmt: skip


def manifest_text(actions: tuple[Action, ...], triggers: tuple[Trigger, ...] = ()) -> str:
    return json.dumps(build_manifest(actions, triggers), indent=2, ensure_ascii=False) + "\n"
