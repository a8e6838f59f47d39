"""Request bodies: one JSON object, parsed once, refused clearly when it is anything else.

Every JSON body of the API is read here, through `bridge.infra.jsontext.loads`: nesting past
`API_DEPTH` is a 400 before the parser sees it, a lone surrogate a 422 naming its field.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request
from marshmallow import Schema

from bridge.infra import jsontext
from bridge.infra.errors import ClientError

NOT_AN_OBJECT = "Request body must be a JSON object"
JSON_KINDS = {"list": "an array", "str": "a string", "int": "a number", "float": "a number",
              "bool": "a boolean", "null": "null"}  # fmt: skip


class MalformedBody(ClientError):
    """Raised when a body that must be a JSON object is missing, malformed or something else."""

    def __init__(self, message: str = NOT_AN_OBJECT) -> None:
        super().__init__(400, "malformed_json", message)


def json_object(optional: bool = False) -> dict[str, Any]:
    """The JSON object body (400 when it is malformed or not an object; `{}` when optional and
    empty).

    Raises:
        MalformedBody: not JSON, not an object, or not sent as `application/json`.
        JsonTooDeep: nested deeper than `jsontext.API_DEPTH`.
        NotUnicode: a string holds a lone surrogate (422 naming it).
    """
    raw = request.get_data()
    if optional and not raw:
        return {}
    if not request.is_json:  # the usual slip of a hand-built HTTP module: say how to fix it
        raise MalformedBody(f"{NOT_AN_OBJECT}; send Content-Type: application/json")
    try:
        payload = jsontext.loads(raw, max_depth=jsontext.API_DEPTH)
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"{NOT_AN_OBJECT}: the body is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:  # say where, so a hand-built body can be fixed
        where = f"line {exc.lineno}, column {exc.colno}"
        raise MalformedBody(f"{NOT_AN_OBJECT}: not valid JSON ({exc.msg} at {where})") from exc
    except ValueError as exc:  # anything else the parser refuses
        raise MalformedBody() from exc
    if not isinstance(payload, dict):
        kind = type(payload).__name__ if payload is not None else "null"
        raise MalformedBody(f"{NOT_AN_OBJECT}, not {JSON_KINDS.get(kind, kind)}")
    return payload


def json_body(schema: Schema, optional: bool = False) -> dict[str, Any]:
    """Parse and validate the JSON body (400 malformed, 422 naming the field)."""
    data: dict[str, Any] = schema.load(json_object(optional))
    return data
