"""Base schema for inputs sent by no-code tools.

Zapier, Make and n8n send empty strings (or nulls) for optional fields the user left blank;
those are dropped before validation so they mean "not given" instead of failing a type check.
Unknown fields are refused by name, which catches typos in hand-built Make/n8n bodies.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, pre_load, validate

UPSTREAM_ID = validate.Regexp(
    r"^[A-Za-z0-9@_.:-]{1,100}$", error="must be a ZappWay id (letters, digits, - _ . : @)"
)


def zappway_id(**kwargs: Any) -> fields.String:
    """A field holding a ZappWay id: it ends up in an upstream URL, so its alphabet is checked."""
    return fields.String(validate=UPSTREAM_ID, **kwargs)


class ToolInput(Schema):
    class Meta:
        unknown = RAISE

    @pre_load
    def drop_blank_optionals(self, data: Any, **_kwargs: Any) -> Any:
        if not isinstance(data, dict):
            return data
        required = {name for name, field in self.fields.items() if field.required}
        return {k: v for k, v in data.items() if k in required or v not in ("", None)}
