"""Document storage semantics: upsert per profile, indexing start, and scored search.

Search is deterministic: the score is the share of distinct query words found in the
document (4 decimals), ties broken by age. Only ``synched`` documents are searchable,
as upstream only searches indexed chunks.
"""

from __future__ import annotations

import re
from typing import Any

from .models import Document
from .state import Store

LEGACY_METADATA_REQUIRED = (
    "datastore_id",
    "datasource_id",
    "datasource_type",
    "datasource_name",
    "source_url",
)
LEGACY_METADATA_OPTIONAL = ("custom_id", "tags")
_WORD = re.compile(r"[a-z0-9]+")


def store_new(
    store: Store,
    datastore_id: str,
    text: str,
    *,
    name: str | None = None,
    metadata: dict[str, Any] | None = None,
    external_id: str | None = None,
    indexed: bool = False,
) -> Document:
    """Create a document and start indexing it (``indexed`` makes it synched at once)."""
    now = store.now()
    doc_id = store.ids.new_id()
    doc = Document(
        id=doc_id,
        datastore_id=datastore_id,
        name=name or f"Document {doc_id[-6:]}",
        text=text,
        created_at=now,
        updated_at=now,
        seq=store.next_seq(),
        indexing_started=now,
        indexing_delay=0.0 if indexed else store.settings.indexing_delay_s,
        indexing_result="synched" if indexed else store.settings.indexing_result,
        metadata=dict(metadata or {}),
        external_id=external_id,
    )
    store.documents[doc.id] = doc
    _count_upload(store, datastore_id, text)
    return doc


def replace(
    store: Store, doc: Document, text: str, name: str | None, metadata: dict[str, Any] | None
) -> None:
    """Replace a document's content in place and index it again under the same id."""
    now = store.now()
    doc.text = text
    doc.name = name or doc.name
    if metadata is not None:
        doc.metadata = dict(metadata)
    doc.updated_at = now
    doc.indexing_started = now
    doc.indexing_delay = store.settings.indexing_delay_s
    doc.indexing_result = store.settings.indexing_result
    _count_upload(store, doc.datastore_id, text)


def _count_upload(store: Store, datastore_id: str, text: str) -> None:
    datastore = store.datastores.get(datastore_id)
    if datastore is not None:
        store.usage_of(datastore.org_id).uploaded_bytes += len(text.encode())


def find_by_external_id(store: Store, datastore_id: str, external_id: str) -> Document | None:
    for doc in store.documents.values():
        if doc.datastore_id == datastore_id and doc.external_id == external_id:
            return doc
    return None


def legacy_metadata_issues(index: int, metadata: Any) -> list[dict[str, Any]]:
    """Validate metadata like the ancestor's strict schema; return zod-style issues."""
    path: list[Any] = ["documents", index, "metadata"]
    if not isinstance(metadata, dict):
        return [{"code": "invalid_type", "path": path, "message": "Expected object"}]
    allowed = set(LEGACY_METADATA_REQUIRED) | set(LEGACY_METADATA_OPTIONAL)
    issues: list[dict[str, Any]] = []
    unknown = sorted(set(metadata) - allowed)
    if unknown:
        keys = ", ".join(f"'{k}'" for k in unknown)
        message = f"Unrecognized key(s) in object: {keys}"
        issues.append(
            {"code": "unrecognized_keys", "keys": unknown, "path": path, "message": message}
        )
    for name in LEGACY_METADATA_REQUIRED:
        if not isinstance(metadata.get(name), str):
            issues.append({"code": "invalid_type", "path": [*path, name], "message": "Required"})
    return issues


def custom_id(doc: Document) -> str | None:
    value = doc.metadata.get("custom_id")
    return value if isinstance(value, str) else doc.external_id


def search(
    store: Store,
    datastore_ids: list[str],
    query: str,
    top_k: int,
    filters: dict[str, Any] | None = None,
) -> list[tuple[Document, float]]:
    """Return up to ``top_k`` (document, score) pairs, best first."""
    filters = filters or {}
    custom_ids = filters.get("custom_ids") or None
    datasource_ids = filters.get("datasource_ids") or None
    words = set(_WORD.findall(query.lower()))
    now = store.now()
    scored = []
    for ds_id in datastore_ids:
        for doc in store.documents_of(ds_id):
            if doc.status(now) != "synched":
                continue
            if custom_ids is not None and custom_id(doc) not in custom_ids:
                continue
            if datasource_ids is not None and doc.id not in datasource_ids:
                continue
            found = words & set(_WORD.findall(doc.text.lower()))
            score = round(len(found) / len(words), 4) if words else 0.0
            scored.append((doc, score))
    scored.sort(key=lambda pair: (-pair[1], pair[0].seq))
    return scored[:top_k]
