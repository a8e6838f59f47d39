"""Upsert Document: create or replace documents in a ZappWay datastore, keyed by your own id.

The bridge remembers which upstream document each of your ids became, so sending the same id
again replaces that document instead of adding a duplicate (the legacy upstream ignores ids).
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from bridge.operation import ActionContext
from bridge.schemas import Scalar, ToolInput, zappway_id

KEY = "upsert_document"
NOUN = "Document"
LABEL = "Upsert Document"
DESCRIPTION = "Creates or replaces one document (or a batch) in a ZappWay datastore."
KIND = "create"
MAX_DOCUMENTS = 100


class DocumentIn(ToolInput):
    id = fields.String(validate=validate.Length(min=1, max=255), metadata={
        "description": "Your id for the document; sending it again replaces the document."
    })  # fmt: skip
    text = fields.String(
        required=True, validate=validate.Length(min=1, max=900_000),
        metadata={"description": "The document's content (plain text)."},
    )  # fmt: skip
    title = fields.String(validate=validate.Length(max=500))
    url = fields.Url(require_tld=False, schemes={"http", "https"}, metadata={
        "description": "Where the document lives (http or https)."
    })  # fmt: skip
    metadata = fields.Dict(
        keys=fields.String(validate=validate.Length(max=100)), values=Scalar(allow_none=True),
        metadata={"description": "Extra name/value pairs stored with the document (each value "
                                 "a string, number or boolean; a null one is left out)."},
    )  # fmt: skip


class Input(ToolInput):
    EXACTLY_ONE_OF = (("document", "documents"),)

    datastore_id = zappway_id(required=True, metadata={"description": "The datastore to write."})
    document = fields.Nested(DocumentIn, metadata={
        "description": "One document. Give document or documents, not both."
    })  # fmt: skip
    documents = fields.List(
        fields.Nested(DocumentIn), validate=validate.Length(min=1, max=MAX_DOCUMENTS),
        metadata={"description": f"A batch of 1 to {MAX_DOCUMENTS} documents."},
    )  # fmt: skip

    @validates_schema
    def each_id_once(self, data: dict[str, Any], **_kwargs: Any) -> None:
        """Two documents of one batch with the same id would be one upstream document: the
        first silently replaced by the second, both reported as written."""
        first: dict[str, int] = {}
        for index, document in enumerate(data.get("documents") or ()):
            if (key := document.get("id")) is None:
                continue
            if key in first:
                problem = f"repeats documents.{first[key]}.id; send each id once per batch"
                raise ValidationError({"documents": {index: {"id": [problem]}}})
            first[key] = index


class Result(Schema):
    id = fields.String(allow_none=True, required=True)
    upstream_id = fields.String(required=True)
    status = fields.String(
        required=True, validate=validate.OneOf(("created", "updated", "unchanged"))
    )


class Output(Schema):
    documents = fields.List(fields.Nested(Result), required=True)
    created = fields.Integer(required=True)
    updated = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)


SAMPLE = {
    "documents": [
        {"id": "wp-post-42", "upstream_id": "clds000000000000000000007", "status": "created"}
    ],
    "created": 1,
    "updated": 0,
    "unchanged": 0,
}


def perform(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    documents = data.get("documents") or [data["document"]]
    outcomes = ctx.documents.upsert(data["datastore_id"], documents)
    rows = [{"id": o.id, "upstream_id": o.upstream_id, "status": o.status} for o in outcomes]
    return {
        "documents": rows,
        **{status: sum(1 for o in outcomes if o.status == status) for status in
           ("created", "updated", "unchanged")},
    }  # fmt: skip
