"""Dropdown sources (`/v1/agents`, `/v1/datastores`): one page of a connection's agents or
datastores, in the shape the platform's dropdown wants. Pages count from 1; the total is given
apart (the view sends it as X-Total-Count)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, fields, validate

from bridge.schemas import integer


class ListQuery(Schema):
    page = integer(1, 10_000, load_default=1)
    limit = integer(1, 500, load_default=100)
    format = fields.String(load_default="items", validate=validate.OneOf(("items", "options")))


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


def page(items: list[dict[str, Any]], query: dict[str, Any]) -> Page:
    """The `query["page"]`-th page of `limit` items: `{id, name}`, or `{label, value}` for
    `format=options` (what Make and n8n option lists take)."""
    start = (query["page"] - 1) * query["limit"]
    chosen = items[start : start + query["limit"]]
    if query["format"] == "options":
        shaped = [{"label": i["name"], "value": i["id"]} for i in chosen]
    else:
        shaped = [{"id": i["id"], "name": i["name"]} for i in chosen]
    return Page(shaped, len(items))
