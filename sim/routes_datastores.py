"""Datastore routes: list, get, query, and the two profiles' upsert and update routes."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from . import documents, render, routing
from .auth import require_owner, require_visible
from .envelope import ApiError, bad_request, forbidden, ok
from .models import Datastore
from .pagination import page_params
from .pipeline import current_auth
from .state import Store, current_store

LEGACY_LIST_CAP = 100
DATASOURCES_LIMIT = 100  # documents listed by GET /datastores/<id> unless `limit` says
LEGACY_UPSERT_PATHS = (
    "/api/external/datastores/upsert/<datastore_id>",
    "/datastores/upsert/<datastore_id>",
)


def register(app: Flask) -> None:
    add = routing.add
    add(app, "datastores", "/datastores", list_datastores, methods=["GET"], family="strict")
    add(
        app,
        "datastore",
        "/datastores/<datastore_id>",
        get_datastore,
        methods=["GET"],
        family="lazy",
    )
    add(
        app,
        "datastore_query",
        "/datastores/<datastore_id>/query",
        query,
        methods=["POST"],
        family="lazy",
    )
    add(
        app,
        "upsert",
        "/datastores/<datastore_id>/upsert",
        upsert,
        methods=["POST"],
        family="strict",
        forms=routing.DOCUMENTED_ONLY,
    )
    for index, path in enumerate(LEGACY_UPSERT_PATHS):
        forms = (("", routing.LEGACY),)
        add(
            app,
            f"legacy_upsert{index}",
            path,
            legacy_upsert,
            methods=["POST"],
            family="handler",
            forms=forms,
        )
    add(
        app,
        "legacy_update",
        "/api/external/datastores/update/<datastore_id>",
        legacy_update,
        methods=["POST"],
        family="handler",
        forms=(("", routing.LEGACY),),
    )


def list_datastores() -> Response:
    store = current_store()
    org = current_auth().org
    assert org is not None
    with store.lock:
        found = [d for d in store.datastores.values() if d.org_id == org.id]
        found.sort(key=lambda d: (d.created_at, d.seq), reverse=True)
        items = [render.datastore(d, len(store.documents_of(d.id))) for d in found]
    if store.legacy:
        return ok(items[:LEGACY_LIST_CAP])
    page, limit = page_params(default_limit=20)
    chunk = items[(page - 1) * limit : page * limit]
    return ok(chunk, meta={"page": page, "limit": limit, "total": len(items)})


def get_datastore(datastore_id: str) -> Response:
    """The datastore with a page of its documents (`datasources`), as the ancestor answers:
    ``search`` (name contains, any case), ``status``, ``offset`` (pages to skip) and ``limit``
    narrow the list, newest first. Legacy answers a miss with 403 and leaks the API keys."""
    store = current_store()
    search, status, offset, limit = _datasource_params()
    with store.lock:
        datastore = store.datastores.get(datastore_id)
        if datastore is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                "Datastore not found.",
                legacy_status=403,
                legacy_body={"error": "UNAUTHORIZED"},
            )
        require_visible(store, current_auth(), datastore.org_id, datastore.visibility)
        docs = store.documents_of(datastore.id)
        body = render.datastore(datastore, len(docs), leak_keys=store.legacy)
        now = store.now()
        listed = [
            doc
            for doc in reversed(docs)
            if search in doc.name.lower() and (status is None or doc.status(now) == status)
        ]
        page = listed[offset * limit : (offset + 1) * limit]
        body["datasources"] = [render.document(doc, now) for doc in page]
        return ok(body)


def _datasource_params() -> tuple[str, str | None, int, int]:
    try:
        offset = int(request.args.get("offset", "0"))
        limit = int(request.args.get("limit", str(DATASOURCES_LIMIT)))
    except ValueError as exc:
        raise bad_request("offset and limit must be integers.") from exc
    search = request.args.get("search", "").strip().lower()
    return search, request.args.get("status") or None, max(0, offset), min(100, max(1, limit))


def query(datastore_id: str) -> Response:
    store = current_store()
    body = request.get_json(silent=True)
    with store.lock:
        datastore = store.datastores.get(datastore_id)
        if datastore is None:
            raise ApiError(
                404,
                "NOT_FOUND",
                "Datastore not found.",
                legacy_status=500,
                legacy_body={"error": "Not found"},
            )
        require_visible(store, current_auth(), datastore.org_id, datastore.visibility)
        text, top_k, filters = _query_params(store, body)
        hits = documents.search(store, [datastore.id], text, top_k, filters)
        store.usage_of(datastore.org_id).datastore_queries += 1
        results = [
            {
                "text": doc.text,
                "score": score,
                "source": render.source_url(doc),
                "datasource_id": doc.id,
                "datasource_name": doc.name,
                "custom_id": documents.custom_id(doc),
                "offset": 0,
            }
            for doc, score in hits
        ]
    return ok(results)


def _query_params(store: Store, body: Any) -> tuple[str, int, dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise bad_request("query is required.", {"fieldErrors": {"query": ["Required"]}})
    top_k: Any = body.get("topK", 5)
    if isinstance(top_k, str) and top_k.isdigit() and not store.legacy:
        top_k = int(top_k)
    if isinstance(top_k, bool) or not isinstance(top_k, int | float):
        raise bad_request(
            "topK must be a number.",
            {"fieldErrors": {"topK": ["Expected number, received string"]}},
        )
    filters = body.get("filters") if isinstance(body.get("filters"), dict) else {}
    assert isinstance(filters, dict)
    if filters.get("datastore_ids"):
        raise forbidden("datastore_ids is not a valid filter for a datastore query.")
    return body["query"], max(1, int(top_k)), filters


def _datastore_for_upsert(store: Store, datastore_id: str) -> Datastore:
    datastore = store.datastores.get(datastore_id)
    if datastore is None:
        raise ApiError(404, "NOT_FOUND", "Datastore not found.")
    auth = current_auth()
    if store.legacy:
        if datastore.visibility != "public" and (
            auth.org is None or auth.org.id != datastore.org_id
        ):
            raise ApiError(403, "UNAUTHORIZED", "Unauthorized.")
    else:
        require_owner(auth, datastore.org_id)
    return datastore


def _documents_of_body(store: Store, body: Any) -> list[dict[str, Any]]:
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("documents"), list)
        or not body["documents"]
    ):
        raise bad_request(
            "documents must be a non-empty array.", {"fieldErrors": {"documents": ["Required"]}}
        )
    docs: list[Any] = body["documents"]
    limit = store.settings.max_documents_per_upsert
    if limit is not None and len(docs) > limit:
        raise ApiError(400, "TOO_MANY_DOCUMENTS", f"At most {limit} documents per request.")
    for index, doc in enumerate(docs):
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str) or not doc["text"]:
            raise bad_request(
                f"documents[{index}].text is required.",
                {"fieldErrors": {f"documents.{index}.text": ["Required"]}},
            )
        for name in ("id", "name"):
            if doc.get(name) is not None and not isinstance(doc[name], str):
                raise bad_request(f"documents[{index}].{name} must be a string.")
        if (
            not store.legacy
            and doc.get("metadata") is not None
            and not isinstance(doc["metadata"], dict)
        ):
            raise bad_request(f"documents[{index}].metadata must be an object.")
    return docs


def upsert(datastore_id: str) -> Response:
    """Documented: ``documents[].id`` is the key, so re-sending replaces in place."""
    store = current_store()
    body = request.get_json(silent=True)
    with store.lock:
        datastore = _datastore_for_upsert(store, datastore_id)
        ids, created = [], False
        for doc in _documents_of_body(store, body):
            existing = (
                documents.find_by_external_id(store, datastore.id, doc["id"])
                if doc.get("id")
                else None
            )
            if existing is not None:
                documents.replace(
                    store, existing, doc["text"], doc.get("name"), doc.get("metadata")
                )
                ids.append(existing.id)
                continue
            new = documents.store_new(
                store,
                datastore.id,
                doc["text"],
                name=doc.get("name"),
                metadata=doc.get("metadata"),
                external_id=doc.get("id"),
            )
            ids.append(new.id)
            created = True
    return ok({"ids": ids}, status=201 if created else 200)


def legacy_upsert(datastore_id: str) -> Response:
    """Legacy: ids ignored (every call duplicates), strict metadata schema, no key for public."""
    store = current_store()
    body = request.get_json(silent=True)
    with store.lock:
        datastore = _datastore_for_upsert(store, datastore_id)
        docs = _documents_of_body(store, body)
        issues = [
            issue
            for index, doc in enumerate(docs)
            if doc.get("metadata") is not None
            for issue in documents.legacy_metadata_issues(index, doc["metadata"])
        ]
        if issues:
            raise bad_request("metadata does not match the schema.", {"issues": issues})
        ids = [
            documents.store_new(
                store, datastore.id, doc["text"], name=doc.get("name"), metadata=doc.get("metadata")
            ).id
            for doc in docs
        ]
    return ok({"ids": ids})


def legacy_update(datastore_id: str) -> Response:
    """Replace one document by upstream id; unknown or foreign ids answer 403."""
    store = current_store()
    body = request.get_json(silent=True)
    with store.lock:
        datastore = _datastore_for_upsert(store, datastore_id)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
            raise bad_request("text is required.", {"fieldErrors": {"text": ["Required"]}})
        if body.get("metadata") is not None:
            issues = documents.legacy_metadata_issues(0, body["metadata"])
            if issues:
                raise bad_request("metadata does not match the schema.", {"issues": issues})
        doc_id = body.get("id")
        doc = store.documents.get(doc_id) if isinstance(doc_id, str) else None
        if doc is None or doc.datastore_id != datastore.id:
            raise ApiError(403, "UNAUTHORIZED", "Unknown document.")
        documents.replace(store, doc, body["text"], body.get("name"), body.get("metadata"))
        return ok({"id": doc.id})
