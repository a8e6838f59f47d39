"""Document status and deletion: ``GET``/``DELETE /datasources/<id>``."""

from __future__ import annotations

from flask import Flask, Response, request

from . import render, routing
from .envelope import ApiError, forbidden, ok
from .models import Document
from .pipeline import current_auth
from .state import Store, current_store


def register(app: Flask) -> None:
    routing.add(
        app,
        "datasource",
        "/datasources/<doc_id>",
        datasource,
        methods=["GET", "DELETE"],
        family="strict",
    )


def _owned_document(store: Store, doc_id: str) -> Document:
    """Documented 404/403; legacy answers both with 500 ``Unauthorized``."""
    doc = store.documents.get(doc_id)
    if doc is None:
        raise ApiError(
            404,
            "NOT_FOUND",
            "Datasource not found.",
            legacy_status=500,
            legacy_body={"error": "Unauthorized"},
        )
    datastore = store.datastores[doc.datastore_id]
    org = current_auth().org
    if org is None or org.id != datastore.org_id:
        if store.legacy:
            raise ApiError(
                500, "Unauthorized", "Unauthorized", legacy_body={"error": "Unauthorized"}
            )
        raise forbidden()
    return doc


def datasource(doc_id: str) -> Response:
    store = current_store()
    with store.lock:
        doc = _owned_document(store, doc_id)
        body = render.document(doc, store.now())
        if request.method == "DELETE":
            del store.documents[doc.id]
    return ok(body)
