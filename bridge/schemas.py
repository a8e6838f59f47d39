"""Base schema for inputs sent by no-code tools, and the fields every input shares.

Zapier, Make and n8n send empty strings (or nulls) for optional fields the user left blank;
those are dropped before validation so they mean "not given" instead of failing a type check.
Unknown fields are refused by name, which catches typos in hand-built Make/n8n bodies.

Two rules a field list cannot say are declared as data on the schema, so the server enforces
them and `/openapi.json` documents them from the same declaration (`bridge.spec.openapi`):
`ALIASES` (other names a field is accepted under: one of them at most) and `EXACTLY_ONE_OF`
(groups of fields of which a body gives one, never two, never none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates_schema

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


class Scalar(fields.Raw):
    """A JSON string, number or boolean: a value ZappWay stores as is (an object or a list in
    document metadata was dropped on the way, silently)."""

    default_error_messages = {"invalid": "must be a string, number or boolean"}  # noqa: RUF012

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str | int | float | bool):
            return value
        raise self.make_error("invalid")


class ToolInput(Schema):
    # not marshmallow's "Invalid input type." (its API: a class attribute)
    error_messages = {"type": "must be a JSON object"}  # noqa: RUF012

    # field -> the other names platforms send it under (Zapier's targetUrl, n8n's hookUrl...)
    ALIASES: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    # groups of fields of which exactly one must be given
    EXACTLY_ONE_OF: ClassVar[tuple[tuple[str, ...], ...]] = ()

    class Meta:
        unknown = RAISE

    @pre_load
    def normalise(self, data: Any, **_kwargs: Any) -> Any:
        """Rename the first alias given to its field (a second name stays, and is refused as
        unknown), then drop blank optionals."""
        if not isinstance(data, dict):
            return data
        for name, aliases in self.ALIASES.items():
            if name not in data:
                given = next((alias for alias in aliases if alias in data), None)
                if given is not None:
                    data = {**{k: v for k, v in data.items() if k != given}, name: data[given]}
        required = {name for name, field in self.fields.items() if field.required}
        return {k: v for k, v in data.items() if k in required or v not in ("", None)}

    @validates_schema
    def exactly_one_of(self, data: dict[str, Any], **_kwargs: Any) -> None:
        for group in self.EXACTLY_ONE_OF:
            if sum(name in data for name in group) != 1:
                raise ValidationError(f"give exactly one of {' or '.join(group)}", group[0])
