"""OpenAPI 3.1 for the bridge, built with apispec from the routes' own declarations.

Every route declares what it takes and answers beside its view (`bridge.web.api.Endpoint`); the
registry's routes get theirs from the action and trigger modules. This module walks the app's URL
map and turns those declarations into the document, so it lists exactly the routes that exist,
with every status they can answer: the same error envelope everywhere, 401 for credentials, 429
with Retry-After. Contract testers (schemathesis) hold the bridge to it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from marshmallow import fields, missing, validate

from bridge.spec.manifest import VERSION
from bridge.web.api import ERROR_TEXT, Answer, Endpoint, ErrorEnvelope, endpoint_of

if TYPE_CHECKING:
    from flask import Flask

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
ADMIN_SECURITY: list[dict[str, list[str]]] = [{"adminToken": []}]
ZAPPWAY_ID_PATTERN = "^[A-Za-z0-9@_.:-]{1,100}$"
CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
# Response headers an error status always carries (`required`, so contract testers check them).
ANSWER_HEADERS = {
    429: {"Retry-After": "Seconds to wait before retrying (at least 1)"},
    409: {"Retry-After": "Seconds to wait before retrying"},
}


class RulesPlugin(MarshmallowPlugin):
    """apispec's marshmallow plugin, plus the rules a field list cannot say: a `ToolInput`'s
    `ALIASES` and `EXACTLY_ONE_OF` (`bridge.schemas`) become alternative properties and
    `oneOf` groups, so a body valid by the schema is one the server accepts on its shape."""

    # MarshmallowPlugin's signature, which differs from its typed base class's
    def schema_helper(  # type: ignore[override]
        self, name: Any, _: Any, schema: Any = None, **kwargs: Any
    ) -> Any:
        described: dict[str, Any] | None = super().schema_helper(  # type: ignore[no-untyped-call]
            name, _, schema=schema, **kwargs
        )
        if described is None:
            return None
        cls = resolve_schema_cls(schema)
        groups = [tuple(group) for group in getattr(cls, "EXACTLY_ONE_OF", ())]
        properties = described.setdefault("properties", {})
        for field, aliases in getattr(cls, "ALIASES", {}).items():
            for alias in aliases:
                properties[alias] = {
                    **properties[field],
                    "description": f"Another name for `{field}`",
                }
            groups.append((field, *aliases))
        required = [key for key in described.get("required", []) if not _grouped(key, groups)]
        if required:
            described["required"] = required
        else:
            described.pop("required", None)
        alternatives = [{"oneOf": [{"required": [key]} for key in group]} for group in groups]
        if len(alternatives) == 1:
            described.update(alternatives[0])
        elif alternatives:
            described["allOf"] = alternatives
        return described


def _grouped(name: str, groups: list[tuple[str, ...]]) -> bool:
    return any(name in group for group in groups)


@dataclass(frozen=True)
class Operation:
    path: str  # OpenAPI form: /v1/hooks/{subscription_id}
    method: str
    endpoint: Endpoint
    path_params: tuple[str, ...]


def operations(app: Flask) -> Iterator[Operation]:
    """Each declared route once (a view served under two paths is documented under the first).

    Routes without a declaration are skipped (a test checks there are none), and so are HTML
    pages (`Endpoint.html`): the document describes the JSON API.
    """
    seen: set[int] = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        declared = endpoint_of(view) if view is not None else None
        if declared is None or declared.html or id(view) in seen:
            continue
        seen.add(id(view))
        path = CONVERTER.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield Operation(path, method.lower(), declared, tuple(sorted(rule.arguments)))


def build_openapi(app: Flask) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document for every declared route of `app`."""
    spec = APISpec(
        title="ZappWay Bridge",
        version=VERSION,
        openapi_version="3.1.0",
        plugins=[RulesPlugin(schema_name_resolver=_schema_name)],
        info={"description": "Bridge between no-code automation tools and the ZappWay API."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme(
        "apiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    )
    spec.components.security_scheme("adminToken", {
        "type": "http", "scheme": "bearer",
        "description": "BRIDGE_ADMIN_TOKEN (the operator's token; 403 when it is not set)",
    })  # fmt: skip
    spec.components.schema("ErrorEnvelope", schema=ErrorEnvelope)
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations(app):
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation)
    for path, methods in paths.items():
        spec.path(path=path, operations=methods)
    return spec.to_dict()


def _path_schema(declared: Endpoint, name: str) -> dict[str, Any]:
    pattern = declared.path_patterns.get(name)
    return {"type": "string", **({"pattern": pattern} if pattern else {})}


def _operation(operation: Operation) -> dict[str, Any]:
    declared = operation.endpoint
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(declared, name)}
        for name in operation.path_params
    ]
    if declared.query is not None:
        parameters += [
            {"name": field.data_key or name, "in": "query", "required": field.required,
             "schema": _query_schema(field), **_described(field)}
            for name, field in declared.query().fields.items()
        ]  # fmt: skip
    parameters += [
        {"name": header.name, "in": "header", "required": False, "schema": dict(header.schema),
         **({"description": header.description} if header.description else {})}
        for header in declared.headers
    ]  # fmt: skip
    responses = {status: _answer(answer) for status, answer in declared.answers.items()}
    for status in declared.errors:
        responses[status] = {
            "description": ERROR_TEXT[status],
            "content": {"application/json": {"schema": "ErrorEnvelope"}},
            **_headers(status),
        }
    body: dict[str, Any] = {"summary": declared.summary, "responses": responses}
    if declared.operation_id:
        body["operationId"] = declared.operation_id
    if declared.description:
        body["description"] = declared.description
    if parameters:
        body["parameters"] = parameters
    if declared.body is not None:
        body["requestBody"] = {
            "required": declared.body_required,
            "content": {"application/json": {"schema": declared.body}},
        }
    if declared.admin:
        body["security"] = ADMIN_SECURITY
    elif declared.secured:
        body["security"] = SECURITY
    return body


def _answer(answer: Answer) -> dict[str, Any]:
    described: dict[str, Any] = {"description": answer.description}
    if answer.schema is not None:
        schema: Any = {"type": "array", "items": answer.schema} if answer.many else answer.schema
        described["content"] = {answer.media_type: {"schema": schema}}
    if answer.headers:
        described["headers"] = {
            name: {"description": header.description, "required": header.required,
                   "schema": dict(header.schema)}
            for name, header in answer.headers.items()
        }  # fmt: skip
    return described


def _headers(status: int) -> dict[str, Any]:
    found = ANSWER_HEADERS.get(status)
    if not found:
        return {}
    integer = {"type": "integer", "minimum": 1}
    described = {
        name: {"description": text, "required": True, "schema": integer}
        for name, text in found.items()
    }
    return {"headers": described}


def _described(field: fields.Field[Any]) -> dict[str, Any]:
    text = field.metadata.get("description")
    return {"description": text} if text else {}


def _query_schema(field: fields.Field[Any]) -> dict[str, Any]:
    """JSON Schema of a query parameter: types, ranges, choices and defaults."""
    default = {} if field.load_default is missing else {"default": field.load_default}
    if isinstance(field, fields.Integer):
        low = next((v.min for v in field.validators if isinstance(v, validate.Range)), None)
        high = next((v.max for v in field.validators if isinstance(v, validate.Range)), None)
        return {"type": "integer", **({"minimum": low} if low is not None else {}),
                **({"maximum": high} if high is not None else {}), **default}  # fmt: skip
    if isinstance(field, fields.Boolean):
        return {"type": "boolean", **default}
    if isinstance(field, fields.DateTime):
        return {"type": "string", "format": "date-time"}
    choices = next((v.choices for v in field.validators if isinstance(v, validate.OneOf)), None)
    if choices is not None:
        return {"type": "string", "enum": list(choices), **default}
    if any(isinstance(v, validate.Regexp) for v in field.validators):
        return {"type": "string", "pattern": ZAPPWAY_ID_PATTERN, **default}
    return {"type": "string", **default}


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
