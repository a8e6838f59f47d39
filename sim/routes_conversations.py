"""Conversation routes: the documented list, the legacy ``/api/logs``, and messages.

Documented: ``limit`` (default 20, max 100) and ``after`` on ``createdAt``, inclusive or
exclusive and ascending or descending by switch, ties broken by id, with ``meta.total``.
Legacy: pages of 100 by ``updatedAt`` descending with an id cursor, which skips or
repeats rows when conversations move between page reads, as the ancestor does.
"""

from __future__ import annotations

from flask import Flask, Response, request

from . import render, routing
from .auth import require_owner, require_visible
from .clock import parse_iso
from .envelope import ApiError, bad_request, ok
from .models import Conversation
from .pagination import page_params
from .pipeline import current_auth
from .state import current_store

LOGS_PAGE = 100
MESSAGES_PAGE = 50


def register(app: Flask) -> None:
    routing.add(
        app,
        "conversations",
        "/agents/<agent_id>/conversations",
        list_conversations,
        methods=["GET"],
        family="strict",
        forms=routing.DOCUMENTED_ONLY,
    )
    routing.add(
        app,
        "logs",
        "/api/logs",
        logs,
        methods=["GET"],
        family="strict",
        forms=(("", routing.LEGACY),),
    )
    routing.add(
        app,
        "conversation",
        "/conversations/<conv_id>",
        get_conversation,
        methods=["GET"],
        family="lazy",
    )


def list_conversations(agent_id: str) -> Response:
    store = current_store()
    page, limit = page_params(default_limit=20)
    after = request.args.get("after")
    try:
        after_at = parse_iso(after) if after else None
    except ValueError as exc:
        raise bad_request("after must be an ISO 8601 date or datetime.") from exc
    with store.lock:
        agent = store.find_agent(agent_id)
        if agent is None:
            raise ApiError(404, "NOT_FOUND", "Agent not found.")
        require_owner(current_auth(), agent.org_id)
        inclusive = store.settings.after_inclusive
        found = [
            c
            for c in store.conversations.values()
            if c.agent_id == agent.id
            and (
                after_at is None
                or c.created_at > after_at
                or (inclusive and c.created_at == after_at)
            )
        ]
        found.sort(key=lambda c: (c.created_at, c.id), reverse=store.settings.order == "desc")
        items = [render.conversation(c) for c in found[(page - 1) * limit : page * limit]]
    return ok(items, meta={"page": page, "limit": limit, "total": len(found)})


def logs() -> Response:
    """``agentId``/``channel``/``status``/``priority`` filters; ``cursor`` = last id seen."""
    store = current_store()
    org = current_auth().org
    assert org is not None
    filters = {
        "agent_id": request.args.get("agentId"),
        "channel": request.args.get("channel"),
        "status": request.args.get("status"),
        "priority": request.args.get("priority"),
    }
    with store.lock:
        found = [
            c for c in store.conversations.values() if c.org_id == org.id and _keep(c, filters)
        ]
        found.sort(key=lambda c: (c.updated_at, c.id), reverse=True)
        cursor = request.args.get("cursor")
        start = 0
        if cursor:
            ids = [c.id for c in found]
            start = ids.index(cursor) + 1 if cursor in ids else len(found)
        chunk = found[start : start + LOGS_PAGE]
        return ok([render.conversation(c, recent_messages=2) for c in chunk])


def _keep(conv: Conversation, filters: dict[str, str | None]) -> bool:
    values = {
        "agent_id": conv.agent_id,
        "channel": conv.channel,
        "status": conv.status,
        "priority": conv.priority,
    }
    return all(wanted is None or values[name] == wanted for name, wanted in filters.items())


def get_conversation(conv_id: str) -> Response:
    """Messages 50 per page, newest first; ``cursor`` = the last message id seen."""
    store = current_store()
    with store.lock:
        conv = store.conversations.get(conv_id)
        if conv is None:
            if store.legacy:
                return ok(None)
            raise ApiError(404, "NOT_FOUND", "Conversation not found.")
        agent = store.agents.get(conv.agent_id)
        visibility = agent.visibility if agent else "private"
        require_visible(store, current_auth(), conv.org_id, visibility)
        newest = list(reversed(conv.messages))
        cursor = request.args.get("cursor")
        start = 0
        if cursor:
            ids = [m.id for m in newest]
            start = ids.index(cursor) + 1 if cursor in ids else len(newest)
        body = render.conversation(conv)
        body["messages"] = [render.message(m) for m in newest[start : start + MESSAGES_PAGE]]
    return ok(body)
