"""Base schema for inputs sent by no-code tools, and the fields every input shares.

Zapier, Make and n8n send empty strings (or nulls) for optional fields the user left blank;
those are dropped before validation so they mean "not given" instead of failing a type check.
Unknown fields are refused by name, which catches typos in hand-built Make/n8n bodies.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, pre_load, validate

SQL_INT_MAX = 2**31 - 1
"""The largest INTEGER (PostgreSQL's int4, the type of every integer id column): the top of
every integer a URL may carry, since one past SQLite's or PostgreSQL's range fails the query."""

UPSTREAM_ID = validate.Regexp(
    r"^[A-Za-z0-9@_.:-]{1,100}$", error="must be a ZappWay id (letters, digits, - _ . : @)"
)


def zappway_id(**kwargs: Any) -> fields.String:
    """A field holding a ZappWay id: it ends up in an upstream URL, so its alphabet is checked."""
    return fields.String(validate=UPSTREAM_ID, **kwargs)


def integer(minimum: int, maximum: int = SQL_INT_MAX, **kwargs: Any) -> fields.Integer:
    """An integer within `[minimum, maximum]`: every integer query parameter is one, so a value
    out of range is a 422 naming it, never an overflow in the query it feeds."""
    if maximum > SQL_INT_MAX:
        raise ValueError(f"an integer parameter is at most {SQL_INT_MAX}")
    return fields.Integer(validate=validate.Range(min=minimum, max=maximum), **kwargs)


class ToolInput(Schema):
    class Meta:
        unknown = RAISE

    @pre_load
    def drop_blank_optionals(self, data: Any, **_kwargs: Any) -> Any:
        if not isinstance(data, dict):
            return data
        required = {name for name, field in self.fields.items() if field.required}
        return {k: v for k, v in data.items() if k in required or v not in ("", None)}
