"""Search Datastore: semantic search over a datastore (a search: `[]` when nothing matches)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from bridge.operation import ActionContext
from bridge.schemas import ToolInput, zappway_id
from bridge.upstream.errors import UpstreamNotFound

KEY = "query_datastore"
NOUN = "Passage"
LABEL = "Search Datastore"
DESCRIPTION = "Finds the passages of a ZappWay datastore closest in meaning to a query."
KIND = "search"


class Filters(ToolInput):
    custom_ids = fields.List(
        fields.String(validate=validate.Length(max=255)), validate=validate.Length(max=100)
    )
    datasource_ids = fields.List(
        fields.String(validate=validate.Length(max=100)), validate=validate.Length(max=100)
    )


class Input(ToolInput):
    datastore_id = zappway_id(required=True, metadata={"description": "The datastore to search."})
    query = fields.String(required=True, validate=validate.Length(min=1, max=10_000), metadata={
        "description": "What to look for, in plain words."
    })  # fmt: skip
    top_k = fields.Integer(load_default=5, validate=validate.Range(min=1, max=50), metadata={
        "description": "How many passages at most (1 to 50, default 5)."
    })  # fmt: skip
    filters = fields.Nested(Filters, metadata={
        "description": "Only passages of these documents (your ids) or datasources."
    })  # fmt: skip


class Output(Schema):
    text = fields.String(allow_none=True)
    score = fields.Float(allow_none=True)
    source = fields.String(allow_none=True)
    datasource_id = fields.String(allow_none=True)
    datasource_name = fields.String(allow_none=True)
    custom_id = fields.String(allow_none=True)


SAMPLE = [
    {
        "text": "Our return window is 30 days from delivery.",
        "score": 0.83,
        "source": "https://example.com/returns",
        "datasource_id": "clds000000000000000000001",
        "datasource_name": "Returns FAQ",
        "custom_id": None,
    }
]


def perform(ctx: ActionContext, data: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        results = ctx.zappway.query_datastore(
            data["datastore_id"], data["query"], data["top_k"], data.get("filters")
        )
    except UpstreamNotFound:
        return []
    # Nearest neighbours come back even when nothing matches; a score of 0 is no match at all.
    return [item for item in results if not _scores_nothing(item.get("score"))]


def _scores_nothing(score: Any) -> bool:
    return isinstance(score, int | float) and not isinstance(score, bool) and score <= 0
