"""Creating records on behalf of the admin API and the demo seed, with validation.

Raises ``ValueError`` for bad input and ``LookupError`` for unknown parents; the admin
blueprint turns them into 400 and 404. Callers hold the store lock.
"""

from __future__ import annotations

import re
from typing import Any

from . import documents
from .clock import parse_iso
from .models import Agent, ApiKey, Conversation, Datastore, Message, Org
from .state import Store

VISIBILITIES = ("private", "public")
CHANNELS = (
    *("api", "website", "dashboard", "whatsapp", "zapier"),
    *("form", "mail", "slack", "crisp", "telegram"),
)
_HANDLE = re.compile(r"^[a-zA-Z0-9_]{4,15}$")


def create_org(store: Store, name: str, plan: Any = "free", org_id: str | None = None) -> Org:
    if not isinstance(name, str) or not name:
        raise ValueError("name is required")
    if plan not in ("free", "pro") and not (
        isinstance(plan, int) and not isinstance(plan, bool) and plan > 0
    ):
        raise ValueError("plan must be 'free', 'pro' or a positive integer")
    org = Org(org_id or store.ids.new_id(), name, plan, store.now())
    store.orgs[org.id] = org
    return org


def create_key(store: Store, org_id: str, key: str | None = None, rate_limit: Any = None) -> ApiKey:
    if org_id not in store.orgs:
        raise LookupError(f"unknown org {org_id}")
    if key is not None and (not isinstance(key, str) or not key or key.split() != [key]):
        raise ValueError("key must be a non-empty string without whitespace")
    if rate_limit is not None and (not isinstance(rate_limit, int) or rate_limit <= 0):
        raise ValueError("rate_limit must be a positive integer")
    record = ApiKey(key or store.ids.new_key(), org_id, store.now(), rate_limit)
    store.keys[record.key] = record
    return record


def _check_visibility(value: Any) -> str:
    if value not in VISIBILITIES:
        raise ValueError("visibility must be 'private' or 'public'")
    return str(value)


def create_datastore(
    store: Store, org_id: str, name: str, visibility: str = "private", docs: Any = None
) -> Datastore:
    """Create a datastore, optionally with already indexed documents ``[{text, name?, id?}]``."""
    if org_id not in store.orgs:
        raise LookupError(f"unknown org {org_id}")
    if not isinstance(name, str) or not name:
        raise ValueError("name is required")
    now = store.now()
    datastore = Datastore(
        store.ids.new_id(), org_id, name, now, store.next_seq(), _check_visibility(visibility)
    )
    store.datastores[datastore.id] = datastore
    for doc in docs or []:
        if not isinstance(doc, dict) or not isinstance(doc.get("text"), str):
            raise ValueError("documents must be objects with text")
        documents.store_new(
            store, datastore.id, doc["text"], name=doc.get("name"), metadata=doc.get("metadata"),
            external_id=doc.get("id"), indexed=True,
        )  # fmt: skip
    return datastore


def create_agent(store: Store, org_id: str, name: str, **options: Any) -> Agent:
    """Create an agent.

    Options: ``visibility``, ``datastore_ids``, ``handle``, ``pending_approval``,
    ``model_name``, ``description``.
    """
    if org_id not in store.orgs:
        raise LookupError(f"unknown org {org_id}")
    if not isinstance(name, str) or not name:
        raise ValueError("name is required")
    datastore_ids = options.get("datastore_ids") or []
    for ds_id in datastore_ids:
        if ds_id not in store.datastores:
            raise LookupError(f"unknown datastore {ds_id}")
    handle = options.get("handle")
    if handle is not None and not (isinstance(handle, str) and _HANDLE.match(handle)):
        raise ValueError("handle must be 4-15 characters of [a-zA-Z0-9_]")
    agent = Agent(
        id=store.ids.new_id(),
        org_id=org_id,
        name=name,
        created_at=store.now(),
        seq=store.next_seq(),
        visibility=_check_visibility(options.get("visibility") or "private"),
        handle=handle,
        description=str(options.get("description") or ""),
        model_name=str(options.get("model_name") or "gpt_4o"),
        datastore_ids=list(datastore_ids),
        pending_approval=bool(options.get("pending_approval", False)),
    )
    store.agents[agent.id] = agent
    return agent


def create_conversation(store: Store, agent_id: str, **options: Any) -> Conversation:
    """Options: ``id``, ``created_at``/``updated_at`` (ISO), ``channel``, ``visitor_id``,
    ``messages`` ``[{from, text}]``, ``lead``, ``status``, ``priority``, ``title``."""
    agent = store.agents.get(agent_id)
    if agent is None:
        raise LookupError(f"unknown agent {agent_id}")
    created = parse_iso(options["created_at"]) if options.get("created_at") else store.now()
    updated = parse_iso(options["updated_at"]) if options.get("updated_at") else created
    channel = options.get("channel") or "website"
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}")
    conv = Conversation(
        id=options.get("id") or store.ids.new_id(),
        org_id=agent.org_id,
        agent_id=agent.id,
        visitor_id=options.get("visitor_id") or store.ids.new_id(),
        created_at=created,
        updated_at=updated,
        channel=channel,
        status=options.get("status") or "UNRESOLVED",
        priority=options.get("priority") or "MEDIUM",
        title=options.get("title"),
        lead=options.get("lead"),
    )
    if conv.id in store.conversations:
        raise ValueError(f"conversation {conv.id} exists")
    for item in options.get("messages") or []:
        if not isinstance(item, dict) or item.get("from") not in ("human", "agent"):
            raise ValueError("messages must be objects with from 'human' or 'agent' and text")
        add_message(store, conv, item["from"], str(item.get("text", "")), created)
    store.conversations[conv.id] = conv
    return conv


def add_message(store: Store, conv: Conversation, sender: str, text: str, at: float) -> Message:
    """Append a message; an agent message answers the latest human one (``inputId``)."""
    last_human = next((m.id for m in reversed(conv.messages) if m.sender == "human"), None)
    message = Message(store.ids.new_id(), conv.id, text, sender, at)
    if sender == "agent":
        message.input_id = last_human
    conv.messages.append(message)
    return message
