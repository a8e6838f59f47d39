"""Delete Document: remove a document from a ZappWay datastore by your id (or ZappWay's)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from bridge.operation import ActionContext
from bridge.schemas import ToolInput, zappway_id
from bridge.upstream.errors import UpstreamNotFound

KEY = "delete_document"
NOUN = "Document"
LABEL = "Delete Document"
DESCRIPTION = "Deletes a document from a ZappWay datastore, by the id you upserted it with."
KIND = "create"


class Input(ToolInput):
    EXACTLY_ONE_OF = (("document_id", "upstream_id"),)

    datastore_id = zappway_id(required=True, metadata={
        "description": "The datastore holding the document."
    })  # fmt: skip
    document_id = fields.String(validate=validate.Length(min=1, max=255), metadata={
        "description": "The id you gave the document when upserting it. Give this or upstream_id."
    })  # fmt: skip
    upstream_id = zappway_id(metadata={
        "description": "ZappWay's own document id, for documents not upserted through the bridge."
    })  # fmt: skip


class Output(Schema):
    deleted = fields.Boolean(required=True)
    document_id = fields.String(allow_none=True, required=True)
    upstream_id = fields.String(allow_none=True, required=True)


SAMPLE = {"deleted": True, "document_id": "wp-post-42", "upstream_id": "clds000000000000000000007"}


def perform(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    if "upstream_id" in data:
        deleted = ctx.documents.delete_upstream(data["datastore_id"], data["upstream_id"])
        result = {"deleted": deleted, "document_id": None, "upstream_id": data["upstream_id"]}
    else:
        upstream_id, deleted = ctx.documents.delete(data["datastore_id"], data["document_id"])
        result = {
            "deleted": deleted,
            "document_id": data["document_id"],
            "upstream_id": upstream_id,
        }
    if not result["deleted"] and result["upstream_id"] is None:
        raise UpstreamNotFound("No document with this id was upserted through this connection")
    return result
