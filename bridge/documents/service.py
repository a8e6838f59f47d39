"""Upserts that update instead of duplicating, and deletes by the caller's own ids.

The legacy upstream mints a new id on every upsert, so documents sent with an id of the caller's
go through the map in `bridge.documents.store`: a known id is replaced (documented: upsert by
id; legacy: the update route), unchanged content is skipped, and a delete finds the upstream id
to delete. Actions reach this through `ActionContext.documents`; the CMS sync uses it too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bridge.documents.store import DocumentMap
from bridge.operation import UpsertOutcome
from bridge.upstream.errors import UpstreamForbidden, UpstreamNotFound
from bridge.upstream.zappway import ZappWay

MAX_BATCH_BYTES = 900_000  # below the upstream's 1 MB JSON body cap


def content_hash(document: dict[str, Any]) -> str:
    canonical = {k: document.get(k) for k in ("text", "title", "url", "metadata")}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True, default=str).encode()).hexdigest()


class DocumentService:
    """One connection's documents, through its ZappWay key (`bridge.operation.Documents`)."""

    def __init__(self, zappway: ZappWay, documents_map: DocumentMap) -> None:
        self.zappway = zappway
        self.map = documents_map

    def upsert(self, datastore_id: str, documents: list[dict[str, Any]]) -> list[UpsertOutcome]:
        return upsert_documents(self.zappway, self.map, datastore_id, documents)

    def delete(self, datastore_id: str, external_id: str) -> tuple[str | None, bool]:
        return delete_document(self.zappway, self.map, datastore_id, external_id)

    def delete_upstream(self, datastore_id: str, upstream_id: str) -> bool:
        deleted = self.zappway.delete_document(upstream_id)
        self.map.forget_upstream(datastore_id, upstream_id)
        return deleted


def upsert_documents(
    zappway: ZappWay, documents_map: DocumentMap, datastore_id: str, documents: list[dict[str, Any]]
) -> list[UpsertOutcome]:
    """Create or replace documents; results in input order.

    Documents without an id are always created. With an id: unchanged content is skipped,
    known ids are replaced (documented: upsert by id; legacy: the update route, re-creating
    the document if it was deleted upstream), new ids are created and remembered.
    """
    anonymous = [doc for doc in documents if not doc.get("id")]
    keyed = {doc["id"]: doc for doc in documents if doc.get("id")}  # last one wins
    results: dict[str, UpsertOutcome] = {}
    with documents_map.leased(datastore_id, list(keyed)) as rows:
        to_send: list[dict[str, Any]] = []
        for external_id, doc in keyed.items():
            row = rows.get(external_id)
            digest = content_hash(doc)
            if row and row.upstream_id and row.content_hash == digest:
                results[external_id] = UpsertOutcome(external_id, row.upstream_id, "unchanged")
            elif row and row.upstream_id and zappway.legacy:
                upstream_id = _replace_legacy(zappway, datastore_id, row.upstream_id, doc)
                documents_map.record(datastore_id, external_id, upstream_id, digest)
                results[external_id] = UpsertOutcome(external_id, upstream_id, "updated")
            else:
                to_send.append(doc)
        sent = list(zip(to_send, _send_batches(zappway, datastore_id, to_send), strict=True))
        documents_map.record_many(
            datastore_id, [(doc["id"], upstream_id, content_hash(doc)) for doc, upstream_id in sent]
        )
        for doc, upstream_id in sent:
            row = rows.get(doc["id"])
            status = "updated" if row and row.upstream_id else "created"
            results[doc["id"]] = UpsertOutcome(doc["id"], upstream_id, status)
    created = _send_batches(zappway, datastore_id, anonymous)
    anonymous_results = iter(UpsertOutcome(None, uid, "created") for uid in created)
    return [results[doc["id"]] if doc.get("id") else next(anonymous_results) for doc in documents]


def _replace_legacy(
    zappway: ZappWay, datastore_id: str, upstream_id: str, doc: dict[str, Any]
) -> str:
    try:
        return zappway.update_document(datastore_id, upstream_id, doc)
    except (UpstreamNotFound, UpstreamForbidden):
        return zappway.upsert_documents(datastore_id, [doc])[0]  # deleted upstream: re-create


def _send_batches(zappway: ZappWay, datastore_id: str, docs: list[dict[str, Any]]) -> list[str]:
    """Upsert in as few calls as the 1 MB body cap allows; ids in input order."""
    ids: list[str] = []
    batch: list[dict[str, Any]] = []
    size = 0
    for doc in docs:
        doc_size = len(json.dumps(doc, default=str))
        if batch and size + doc_size > MAX_BATCH_BYTES:
            ids.extend(zappway.upsert_documents(datastore_id, batch))
            batch, size = [], 0
        batch.append(doc)
        size += doc_size
    if batch:
        ids.extend(zappway.upsert_documents(datastore_id, batch))
    return ids


def delete_document(
    zappway: ZappWay, documents_map: DocumentMap, datastore_id: str, external_id: str
) -> tuple[str | None, bool]:
    """Delete by external id; returns (upstream id, whether upstream had it)."""
    with documents_map.leased(datastore_id, [external_id]) as rows:
        row = rows.get(external_id)
        upstream_id = row.upstream_id if row else None
        existed = zappway.delete_document(upstream_id) if upstream_id else False
        documents_map.forget(datastore_id, external_id)
    return upstream_id, existed
