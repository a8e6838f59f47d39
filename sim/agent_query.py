"""One agent turn: conversation continuity, takeover, approvals, sources and usage.

Answers are deterministic, ``turn N of conversation <id>: <query>``, so tests can see
that a conversation id really carried the history. Callers hold the store lock.
"""

from __future__ import annotations

from typing import Any

from . import documents, quota
from .envelope import ApiError, bad_request, forbidden, not_found
from .models import Agent, Conversation, Message
from .state import Store

SOURCES_PER_ANSWER = 3


def validate(store: Store, body: Any) -> dict[str, Any]:
    """Check the body in the documented profile; the ancestor validates nothing.

    Raises:
        ApiError: 400 for a missing or non-string ``query`` or a bad field type.
    """
    if not isinstance(body, dict):
        raise bad_request("Body must be a JSON object.")
    query = body.get("query")
    if not isinstance(query, str) or (not store.legacy and not query.strip()):
        if store.legacy:
            raise ApiError(
                500, "INTERNAL", "query must be a string", legacy_body={"error": "Error"}
            )
        raise bad_request("query is required and must be a non-empty string.")
    if not store.legacy:
        for name in ("conversationId", "visitorId", "modelName"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise bad_request(f"{name} must be a string.")
        if body.get("modelName") is not None and body["modelName"] not in quota.MODEL_WEIGHTS:
            raise bad_request("modelName is not a supported model.")
        if body.get("filters") is not None and not isinstance(body["filters"], dict):
            raise bad_request("filters must be an object.")
    return body


def check_filters(agent: Agent, body: dict[str, Any]) -> dict[str, Any]:
    """Return the filters; a datastore filter outside the agent's datastores is a 403."""
    filters = body.get("filters") if isinstance(body.get("filters"), dict) else {}
    assert isinstance(filters, dict)
    wanted = filters.get("datastore_ids") or []
    if any(ds_id not in agent.datastore_ids for ds_id in wanted):
        raise forbidden("A datastore filter names a datastore not attached to this agent.")
    return filters


def conversation_for(store: Store, agent: Agent, body: dict[str, Any]) -> Conversation:
    """Find the conversation to continue, or start one (with the given id if unknown).

    Raises:
        ApiError: 404 when unknown ids are switched to 404; 403/500 for another org's id.
    """
    conv_id = body.get("conversationId")
    conv = store.conversations.get(conv_id) if isinstance(conv_id, str) else None
    if conv is not None and conv.org_id != agent.org_id:
        raise ApiError(
            403,
            "FORBIDDEN",
            "Conversation belongs to another organization.",
            legacy_status=500,
            legacy_body={"error": "Unique constraint failed on the fields: (`id`)"},
        )
    if conv is None:
        if isinstance(conv_id, str) and store.settings.unknown_conversation == "404":
            raise not_found("Conversation")
        now = store.now()
        visitor = body.get("visitorId")
        conv = Conversation(
            id=conv_id if isinstance(conv_id, str) and conv_id else store.ids.new_id(),
            org_id=agent.org_id,
            agent_id=agent.id,
            visitor_id=visitor if isinstance(visitor, str) and visitor else store.ids.new_id(),
            created_at=now,
            updated_at=now,
        )
        store.conversations[conv.id] = conv
    if isinstance(body.get("contact"), dict):
        conv.lead = {**(conv.lead or {}), **body["contact"]}
    return conv


def run_turn(store: Store, agent: Agent, body: dict[str, Any]) -> dict[str, Any]:
    """Store the human message and (unless a human took over) the agent's answer.

    Raises:
        ApiError: 402 ``USAGE_LIMIT`` when the quota is on and used up; see above.
    """
    filters = check_filters(agent, body)
    org = store.orgs[agent.org_id]
    usage = store.usage_of(org.id)
    requested = body.get("modelName")
    model = requested if isinstance(requested, str) else agent.model_name
    now = store.now()
    if store.settings.quota_enabled and quota.exhausted(
        usage, org, store.settings.quota_per_month, now
    ):
        raise ApiError(402, "USAGE_LIMIT", "Monthly plan quota exhausted.")
    conv = conversation_for(store, agent, body)
    visitor_id = body.get("visitorId") if isinstance(body.get("visitorId"), str) else None
    visitor_id = visitor_id or conv.visitor_id
    question = Message(store.ids.new_id(), conv.id, body["query"], "human", now)
    conv.messages.append(question)
    conv.updated_at = now
    if not conv.ai_enabled:
        return {"conversationId": conv.id, "visitorId": visitor_id}
    turn = sum(1 for m in conv.messages if m.sender == "human")
    sources = _sources(store, agent, body["query"], filters)
    text = f"turn {turn} of conversation {conv.id}: {body['query']}"
    reply = Message(store.ids.new_id(), conv.id, text, "agent", now, input_id=question.id)
    reply.sources = sources
    if agent.pending_approval:
        reply.text = ""
        reply.approvals = [{"id": store.ids.new_id(), "status": "pending", "toolId": "tool-http"}]
    else:
        reply.usage = _usage(body["query"], text, len(sources), quota.weight(model))
    conv.messages.append(reply)
    quota.current(usage, now).agent_queries += quota.weight(model)
    usage.model_tokens += int(reply.usage.get("totalTokens", 0))
    return {
        "answer": reply.text,
        "sources": sources,
        "conversationId": conv.id,
        "visitorId": visitor_id,
        "messageId": reply.id,
        "usage": reply.usage,
        "approvals": reply.approvals,
        "metadata": {},
    }


def _sources(
    store: Store, agent: Agent, query: str, filters: dict[str, Any]
) -> list[dict[str, Any]]:
    wanted = filters.get("datastore_ids") or agent.datastore_ids
    hits = documents.search(store, list(wanted), query, SOURCES_PER_ANSWER, filters)
    return [
        {
            "chunk_id": f"{doc.id}-0",
            "datasource_id": doc.id,
            "datasource_name": doc.name,
            "datasource_type": "text",
            "source_url": doc.metadata.get("source_url") or f"https://example.com/docs/{doc.id}",
            "score": score,
        }
        for doc, score in hits
        if score > 0
    ]


def _usage(query: str, answer: str, nb_sources: int, weight: int) -> dict[str, Any]:
    prompt = 200 + len(query) // 4 + 150 * nb_sources
    completion = len(answer) // 4 + 1
    total = prompt + completion
    return {
        "promptTokens": prompt,
        "completionTokens": completion,
        "totalTokens": total,
        "cost": round(total * 0.000001 * weight, 6),
    }
