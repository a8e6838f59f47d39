"""ZappWay's operations, typed: the one surface features call (over `UpstreamClient.call`).

Requests are shaped per profile (the legacy API rejects free-form metadata and ignores document
ids); answers pass through allow-lists so billing data and leaked secrets never travel further.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from bridge.upstream import conversations
from bridge.upstream.client import Organization, UpstreamClient
from bridge.upstream.conversations import Conversation, Message
from bridge.upstream.errors import UpstreamForbidden, UpstreamNotFound, UpstreamProtocolError

PAGE_SIZE = 100
MAX_PAGES = 50
SOURCE_FIELDS = (
    "chunk_id", "datasource_id", "datasource_name", "datasource_type", "source_url",
    "page_number", "total_pages", "mime_type", "score",
)  # fmt: skip
USAGE_FIELDS = ("completionTokens", "promptTokens", "totalTokens", "cost")
RESULT_FIELDS = ("text", "score", "source", "datasource_id", "datasource_name", "custom_id")


def pick(source: Any, names: Iterable[str]) -> dict[str, Any]:
    """Keep only the named keys of a mapping (anything else is dropped, not forwarded)."""
    if not isinstance(source, Mapping):
        return {}
    return {name: source[name] for name in names if name in source}


class ZappWay:
    """ZappWay operations for one connection's key."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client

    @property
    def legacy(self) -> bool:
        return self.client.profile == "legacy"

    def organization(self) -> Organization:
        """The key's organization (`GET /me`): the cheap, strict check that a key works.

        Raises:
            UpstreamAuthError: the key is invalid or revoked.
        """
        return self.client.whoami()

    def conversations_since(self, agent_id: str, watermark: datetime | None) -> list[Conversation]:
        """The agent's conversations begun after `watermark` (less a second), oldest first."""
        return conversations.since(self.client, agent_id, watermark)

    def conversation_messages(self, conversation_id: str) -> list[Message] | None:
        """A conversation's messages, None when it no longer exists."""
        return conversations.messages(self.client, conversation_id)

    def query_agent(self, agent_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Ask an agent; never retried on 5xx (a query may have run and been billed)."""
        answer = self.client.call(
            "POST",
            "query_agent",
            path_params={"agent_id": agent_id},
            json={**body, "streaming": False},
        )
        if not isinstance(answer, Mapping):
            raise UpstreamProtocolError("ZappWay's agent answer is not an object")
        sources = _as_list(answer.get("sources"))
        approvals = _as_list(answer.get("approvals"))
        return {
            "answer": answer.get("answer"),
            "conversation_id": answer.get("conversationId"),
            "visitor_id": answer.get("visitorId"),
            "message_id": answer.get("messageId"),
            "sources": [pick(source, SOURCE_FIELDS) for source in sources],
            "usage": pick(answer.get("usage"), USAGE_FIELDS),
            "pending_approvals": len(approvals),
        }

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        """One agent's id, name and description (`GET /agents/{id}` in both profiles).

        Raises:
            UpstreamNotFound: no such agent (documented 404; the legacy `null` body).
            UpstreamForbidden: the agent exists but this key may not read it.
        """
        agent = self.client.call(
            "GET", "agent", path_params={"agent_id": agent_id}, idempotent=True
        )
        if not isinstance(agent, Mapping) or not agent.get("id"):
            raise UpstreamProtocolError("ZappWay's agent answer has no id")
        return {
            "id": str(agent["id"]),
            "name": str(agent.get("name") or agent["id"]),
            "description": agent.get("description"),
        }

    def list_agents(self) -> list[dict[str, Any]]:
        return [
            {
                "id": str(a["id"]),
                "name": str(a.get("name") or a["id"]),
                "description": a.get("description"),
            }
            for a in self._list_all("agents")
            if isinstance(a, Mapping) and a.get("id")
        ]

    def list_datastores(self) -> list[dict[str, Any]]:
        return [
            {
                "id": str(d["id"]),
                "name": str(d.get("name") or d["id"]),
                "description": d.get("description"),
            }
            for d in self._list_all("datastores")
            if isinstance(d, Mapping) and d.get("id")
        ]

    def _list_all(self, operation: str) -> list[Any]:
        """Collect every page (documented `meta`), or the one bare list the legacy API returns."""
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            data, meta = self.client.call(
                "GET", operation, params={"page": page, "limit": PAGE_SIZE}, idempotent=True,
                keep_meta=True,
            )  # fmt: skip
            if not isinstance(data, list):
                raise UpstreamProtocolError(f"ZappWay's {operation} list is not an array")
            items.extend(data)
            total = meta.get("total") if meta else None
            if not isinstance(total, int) or len(items) >= total or len(data) < PAGE_SIZE:
                break
        return items

    def query_datastore(
        self, datastore_id: str, query: str, top_k: int, filters: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        """Semantic search; idempotent, so transient faults are retried."""
        body: dict[str, Any] = {"query": query, "topK": int(top_k)}
        if filters:
            body["filters"] = dict(filters)
        results = self.client.call(
            "POST", "query_datastore", path_params={"datastore_id": datastore_id}, json=body,
            idempotent=True,
        )  # fmt: skip
        if isinstance(results, Mapping):
            results = results.get("results", [])
        if not isinstance(results, list):
            raise UpstreamProtocolError("ZappWay's search answer is not an array")
        return [pick(item, RESULT_FIELDS) for item in results]

    def upsert_documents(self, datastore_id: str, documents: list[dict[str, Any]]) -> list[str]:
        """Send documents; returns upstream ids in input order."""
        body = {"documents": [self._document_body(doc) for doc in documents]}
        answer = self.client.call(
            "POST", "upsert", path_params={"datastore_id": datastore_id}, json=body
        )
        ids = answer.get("ids") if isinstance(answer, Mapping) else None
        if not isinstance(ids, list) or len(ids) != len(documents):
            raise UpstreamProtocolError("ZappWay's upsert answer does not list one id per document")
        return [str(upstream_id) for upstream_id in ids]

    def update_document(self, datastore_id: str, upstream_id: str, document: dict[str, Any]) -> str:
        """Replace one document in place (the legacy update route); returns its upstream id."""
        body = {"id": upstream_id, **self._document_body(document)}
        body.pop("metadata", None)
        answer = self.client.call(
            "POST", "update", path_params={"datastore_id": datastore_id}, json=body
        )
        new_id = answer.get("id") if isinstance(answer, Mapping) else None
        return str(new_id or upstream_id)

    def find_documents(
        self, datastore_id: str, *, external_id: str, name: str | None, name_is_start: bool = False
    ) -> list[str]:
        """Upstream ids of the copies of one of the bridge's documents, found by listing the
        datastore's documents (`GET /datastores/{id}` with `search`, `offset` in pages,
        `limit`: the ancestor's datasource listing). Documented profile: the copy carries the
        bridge's id (`config.custom_id` / `metadata.custom_id`); legacy: ids are ignored, so
        the copy is the one named exactly `name` (or, with `name_is_start`, whose name starts
        with it: the caller kept only the start of a long name). For a create whose answer was
        lost.

        Raises:
            UpstreamError: the listing failed; nothing can be concluded.
        """
        if self.legacy and not name:
            return []  # nothing to recognise a legacy copy by
        found: list[str] = []
        for page in range(MAX_PAGES):
            params: dict[str, Any] = {"offset": page, "limit": PAGE_SIZE}
            if name:
                params["search"] = name
            answer = self.client.call(
                "GET", "datastore", path_params={"datastore_id": datastore_id}, params=params,
                idempotent=True,
            )  # fmt: skip
            listed = answer.get("datasources") if isinstance(answer, Mapping) else None
            if not isinstance(listed, list):
                raise UpstreamProtocolError("ZappWay's datastore answer lists no documents")
            found.extend(
                str(item["id"])
                for item in listed
                if isinstance(item, Mapping) and item.get("id") and self._is_copy(
                    item, external_id, name, name_is_start
                )
            )  # fmt: skip
            if len(listed) < PAGE_SIZE:
                break
        return found

    def _is_copy(
        self, item: Mapping[str, Any], external_id: str, name: str | None, name_is_start: bool
    ) -> bool:
        if self.legacy:
            listed = item.get("name")
            if name_is_start and name and isinstance(listed, str):
                return listed.startswith(name)
            return listed == name
        tags = (
            pick(item.get("config"), ("custom_id",)),
            pick(item.get("metadata"), ("custom_id",)),
        )
        return any(tag.get("custom_id") == external_id for tag in tags)

    def delete_document(self, upstream_id: str) -> bool:
        """Delete one document; False when it was already gone."""
        try:
            self.client.call(
                "DELETE", "datasource", path_params={"document_id": upstream_id}, idempotent=True
            )
        except UpstreamNotFound:
            return False
        except UpstreamForbidden as exc:
            if self.legacy and exc.upstream_status == 500:
                return False  # legacy answers a missing document as if it were foreign
            raise
        return True

    def document_name(self, document: Mapping[str, Any]) -> str | None:
        """The name a document is sent under: its title; on the legacy profile, an untitled
        document of the caller's is named by its id, the one thing `find_documents` can
        recognise it by there (legacy ignores ids and refuses free-form metadata)."""
        if document.get("title"):
            return str(document["title"])
        if self.legacy and document.get("id"):
            return str(document["id"])
        return None

    def _document_body(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """Shape one document for the profile: the legacy API refuses free-form metadata and
        ignores ids (it mints a new one on every upsert)."""
        body: dict[str, Any] = {"text": document["text"]}
        name = self.document_name(document)
        if name:
            body["name"] = name
        if self.legacy:
            return body
        if document.get("id"):
            body["id"] = document["id"]
        metadata = scalar_metadata(document.get("metadata") or {})
        if document.get("url"):
            metadata["source_url"] = document["url"]
        if metadata:
            body["metadata"] = metadata
        return body


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def scalar_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Keep metadata the upstream accepts: string keys with string, number or boolean values."""
    return {
        str(key)[:100]: value
        for key, value in metadata.items()
        if isinstance(value, str | int | float | bool) and not isinstance(value, bytes)
    }
