"""Upserts that update instead of duplicating, and deletes by the caller's own ids.

The legacy upstream mints a new id on every upsert, so documents sent with an id of the caller's
go through the map in `bridge.documents.store`: a known id is replaced (documented: upsert by
id; legacy: the update route), unchanged content is skipped, and a delete finds the upstream id
to delete. A create whose answer never came (reset, timeout, killed worker) leaves its mapping
unconfirmed: a delete, or a legacy re-send, first asks ZappWay for the copy it may hold. Actions
reach this through `ActionContext.documents`; the CMS sync uses it too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from bridge.documents.store import SENT_NAME_MAX, DocumentMap
from bridge.infra.models import DocumentMapping
from bridge.operation import UpsertOutcome
from bridge.upstream.errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamForbidden,
    UpstreamNotFound,
    UpstreamRateLimited,
    UpstreamUnavailable,
)
from bridge.upstream.gate import sending_only_if
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


class DocumentOutcomeUnknown(UpstreamUnavailable):
    """Raised when a create's answer was lost and ZappWay cannot be asked now whether it holds
    the document: deleting (or re-creating) blind could leave a copy behind for ever, so the
    caller must try again later (the CMS sync keeps the change pending)."""

    code = "document_outcome_unknown"
    default_message = "ZappWay's copy of this document cannot be checked now; try again shortly"
    retry_after = 30

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def upsert_documents(
    zappway: ZappWay, documents_map: DocumentMap, datastore_id: str, documents: list[dict[str, Any]]
) -> list[UpsertOutcome]:
    """Create or replace documents; results in input order.

    Documents without an id are always created. With an id: unchanged content is skipped,
    known ids are replaced (documented: upsert by id; legacy: the update route, re-creating
    the document if it was deleted upstream), new ids are created and remembered. A create is
    marked unconfirmed in the map before it is sent; on the legacy profile an unconfirmed one
    is looked up first and the copy ZappWay already holds is adopted instead of duplicated.
    Every call about a leased document is sent only while its lease is surely held.
    """
    anonymous = [doc for doc in documents if not doc.get("id")]
    keyed = {doc["id"]: doc for doc in documents if doc.get("id")}  # last one wins
    results: dict[str, UpsertOutcome] = {}
    with (
        documents_map.leased(datastore_id, list(keyed)) as rows,
        sending_only_if(lambda: documents_map.ensure_held(rows.values())),
    ):
        to_send: list[dict[str, Any]] = []
        for external_id, doc in keyed.items():
            row = rows.get(external_id)
            digest = content_hash(doc)
            unconfirmed = row is not None and row.unconfirmed_at is not None
            known = row.upstream_id if row else None
            if zappway.legacy and row is not None and unconfirmed:
                copies = _copies(zappway, documents_map, datastore_id, row)
                known = copies[0] if copies else known
                for extra in copies[1:]:  # earlier lost answers left more than one
                    zappway.delete_document(extra)
            if known and row and row.content_hash == digest and not unconfirmed:
                results[external_id] = UpsertOutcome(external_id, known, "unchanged")
            elif known and zappway.legacy:
                upstream_id = _replace_legacy(zappway, documents_map, datastore_id, known, doc)
                documents_map.record(datastore_id, external_id, upstream_id, digest)
                results[external_id] = UpsertOutcome(external_id, upstream_id, "updated")
            else:
                to_send.append(doc)
        documents_map.mark_unconfirmed(
            datastore_id,
            [
                (doc["id"], zappway.document_name(doc))
                for doc in to_send
                if not (rows.get(doc["id"]) and rows[doc["id"]].upstream_id)
            ],
        )
        for batch, upstream_ids in _send_batches(zappway, datastore_id, to_send):
            sent = list(zip(batch, upstream_ids, strict=True))
            documents_map.record_many(  # each batch as it is answered: a later one may fail
                datastore_id, [(doc["id"], uid, content_hash(doc)) for doc, uid in sent]
            )
            for doc, upstream_id in sent:
                row = rows.get(doc["id"])
                status = "updated" if row and row.upstream_id else "created"
                results[doc["id"]] = UpsertOutcome(doc["id"], upstream_id, status)
    created = [
        uid for _batch, ids in _send_batches(zappway, datastore_id, anonymous) for uid in ids
    ]
    anonymous_results = iter(UpsertOutcome(None, uid, "created") for uid in created)
    return [results[doc["id"]] if doc.get("id") else next(anonymous_results) for doc in documents]


def _copies(
    zappway: ZappWay, documents_map: DocumentMap, datastore_id: str, row: DocumentMapping
) -> list[str]:
    """The upstream copies of a mapping whose create answer was never seen (never another
    external id's document).

    Raises:
        DocumentOutcomeUnknown: ZappWay could not be asked.
    """
    try:
        found = zappway.find_documents(
            datastore_id, external_id=row.external_id, name=row.sent_name,
            name_is_start=len(row.sent_name or "") >= SENT_NAME_MAX,
        )  # fmt: skip
    except (UpstreamRateLimited, UpstreamAuthError):
        raise  # the caller pauses or flags the key, as for any other call
    except UpstreamError as exc:
        raise DocumentOutcomeUnknown() from exc
    others = documents_map.upstream_ids_of_others(datastore_id, row.external_id)
    return [upstream_id for upstream_id in dict.fromkeys(found) if upstream_id not in others]


def _replace_legacy(
    zappway: ZappWay, documents_map: DocumentMap, datastore_id: str, upstream_id: str,
    doc: dict[str, Any],
) -> str:  # fmt: skip
    try:
        return zappway.update_document(datastore_id, upstream_id, doc)
    except (UpstreamNotFound, UpstreamForbidden):
        # deleted upstream: re-create, marked unconfirmed first like any create
        documents_map.mark_unconfirmed(datastore_id, [(doc["id"], zappway.document_name(doc))])
        return zappway.upsert_documents(datastore_id, [doc])[0]


def _send_batches(
    zappway: ZappWay, datastore_id: str, docs: list[dict[str, Any]]
) -> Iterator[tuple[list[dict[str, Any]], list[str]]]:
    """Upsert in as few calls as the 1 MB body cap allows; each batch with its ids, in order."""
    batch: list[dict[str, Any]] = []
    size = 0
    for doc in docs:
        doc_size = len(json.dumps(doc, default=str))
        if batch and size + doc_size > MAX_BATCH_BYTES:
            yield batch, zappway.upsert_documents(datastore_id, batch)
            batch, size = [], 0
        batch.append(doc)
        size += doc_size
    if batch:
        yield batch, zappway.upsert_documents(datastore_id, batch)


def delete_document(
    zappway: ZappWay, documents_map: DocumentMap, datastore_id: str, external_id: str
) -> tuple[str | None, bool]:
    """Delete by external id; returns (upstream id, whether upstream had it).

    A mapping whose create answer was never seen is looked up first and every copy found is
    deleted: an empty upstream id does not mean ZappWay holds nothing.

    Raises:
        DocumentOutcomeUnknown: the lookup could not be made; nothing was concluded.
    """
    with (
        documents_map.leased(datastore_id, [external_id]) as rows,
        sending_only_if(lambda: documents_map.ensure_held(rows.values())),
    ):
        row = rows.get(external_id)
        targets = [row.upstream_id] if row and row.upstream_id else []
        if row is not None and row.unconfirmed_at is not None:
            targets = list(
                dict.fromkeys(targets + _copies(zappway, documents_map, datastore_id, row))
            )
        existed = False
        for upstream_id in targets:
            existed = zappway.delete_document(upstream_id) or existed
        documents_map.forget(datastore_id, external_id)
    return (targets[0] if targets else None), existed
