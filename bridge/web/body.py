"""Request bodies: one JSON object, parsed once, refused clearly when it is anything else."""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import Schema

from bridge.infra.errors import ClientError


class MalformedBody(ClientError):
    """Raised when a body that must be a JSON object is missing, malformed or something else."""

    def __init__(self, message: str = "Request body must be a JSON object") -> None:
        super().__init__(400, "malformed_json", message)


def json_object(optional: bool = False) -> dict[str, Any]:
    """The JSON object body (400 when it is malformed or not an object; `{}` when optional and
    empty)."""
    if optional and not request.get_data():
        return {}
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise MalformedBody()
    return payload


def json_body(schema: Schema, optional: bool = False) -> dict[str, Any]:
    """Parse and validate the JSON body (400 malformed, 422 naming the field)."""
    data: dict[str, Any] = schema.load(json_object(optional))
    return data
