"""Request bodies: one JSON object, parsed once, refused clearly when it is anything else.

Every JSON body of the API is read here, through `bridge.infra.jsontext.loads`: nesting past
`API_DEPTH` is a 400 before the parser sees it, a lone surrogate a 422 naming its field.
"""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import Schema

from bridge.infra import jsontext
from bridge.infra.errors import ClientError

NOT_AN_OBJECT = "Request body must be a JSON object"


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
    except ValueError as exc:  # not JSON, or not UTF-8
        raise MalformedBody() from exc
    if not isinstance(payload, dict):
        raise MalformedBody()
    return payload


def json_body(schema: Schema, optional: bool = False) -> dict[str, Any]:
    """Parse and validate the JSON body (400 malformed, 422 naming the field)."""
    data: dict[str, Any] = schema.load(json_object(optional))
    return data
