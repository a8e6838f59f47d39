"""JSON shapes of upstream records, including the billing fields the ancestor leaks.

Values starting with ``CANARY-`` are fake secrets: the bridge must drop
them, and its tests search logs, databases and outputs for that prefix.
"""

from __future__ import annotations

from typing import Any

from .clock import iso
from .models import PLAN_LEVELS, Agent, Conversation, Datastore, Document, Message, Org, Usage


def subscriptions(org: Org) -> list[dict[str, Any]]:
    return [
        {
            "id": f"CANARY-sub-{org.id}",
            "status": "active",
            "plan": org.plan if isinstance(org.plan, str) else "enterprise",
            "customerId": f"CANARY-customer-{org.id}",
            "priceId": f"CANARY-price-{org.id}",
        }
    ]


def me(org: Org, usage: Usage, nb_agents: int, nb_datastores: int) -> dict[str, Any]:
    plan = org.plan
    return {
        "id": org.id,
        "name": org.name,
        "currentPlan": PLAN_LEVELS.get(plan, "level_4") if isinstance(plan, str) else "level_4",
        "isPremium": plan != "free",
        "nbAgents": nb_agents,
        "nbDatastores": nb_datastores,
        "usage": {
            "nbAgentQueries": usage.agent_queries,
            "nbDatastoreQueries": usage.datastore_queries,
            "nbUploadedBytes": usage.uploaded_bytes,
            "nbDataProcessingBytes": usage.uploaded_bytes,
            "nbModelTokens": usage.model_tokens,
            "nbStoredTokens": usage.uploaded_bytes // 4,
        },
        "customerId": f"CANARY-customer-{org.id}",
        "subscriptions": subscriptions(org),
    }


def agent(record: Agent, org: Org) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "description": record.description,
        "modelName": record.model_name,
        "temperature": 0,
        "visibility": record.visibility,
        "handle": record.handle,
        "systemPrompt": "You are a helpful assistant.",
        "userPrompt": "{query}",
        "includeSources": True,
        "restrictKnowledge": True,
        "useMarkdown": True,
        "interfaceConfig": {},
        "iconUrl": None,
        "tools": [
            {"id": f"tool{ds_id[4:]}", "type": "datastore", "datastoreId": ds_id}
            for ds_id in record.datastore_ids
        ],
        "organizationId": record.org_id,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.created_at),
        "organization": {"id": org.id, "subscriptions": subscriptions(org)},
    }


def datastore(record: Datastore, nb_documents: int, leak_keys: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "description": record.description,
        "type": "qdrant",
        "visibility": record.visibility,
        "pluginName": None,
        "pluginDescriptionForHumans": None,
        "organizationId": record.org_id,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.created_at),
        "_count": {"datasources": nb_documents},
    }
    if leak_keys:
        body["apiKeys"] = [{"id": f"k{record.id}", "key": f"CANARY-dskey-{record.id}"}]
    return body


def document(record: Document, now: float) -> dict[str, Any]:
    status = record.status(now)
    done = status == "synched"
    tokens = len(record.text) // 4 + 1
    return {
        "id": record.id,
        "datastoreId": record.datastore_id,
        "name": record.name,
        "type": "text",
        "status": status,
        "nbChunks": max(1, len(record.text) // 1000 + 1) if done else 0,
        "nbTokens": tokens if done else 0,
        "lastSynch": iso(record.indexing_started + record.indexing_delay) if done else None,
        "config": {"custom_id": record.external_id, "source_url": source_url(record)},
        "metadata": record.metadata,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
    }


def source_url(record: Document) -> str:
    url = record.metadata.get("source_url")
    return url if isinstance(url, str) else f"https://example.com/docs/{record.id}"


def message(record: Message) -> dict[str, Any]:
    return {
        "id": record.id,
        "text": record.text,
        "from": record.sender,
        "conversationId": record.conversation_id,
        "inputId": record.input_id,
        "sources": record.sources,
        "usage": record.usage,
        "approvals": record.approvals,
        "metadata": {},
        "read": True,
        "attachments": [],
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.created_at),
    }


def conversation(record: Conversation, *, recent_messages: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "title": record.title,
        "channel": record.channel,
        "status": record.status,
        "priority": record.priority,
        "isAiEnabled": record.ai_enabled,
        "metadata": {},
        "agentId": record.agent_id,
        "organizationId": record.org_id,
        "visitorId": record.visitor_id,
        "lead": record.lead,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
    }
    if recent_messages:
        newest = list(reversed(record.messages))[:recent_messages]
        body["messages"] = [message(m) for m in newest]
    return body
