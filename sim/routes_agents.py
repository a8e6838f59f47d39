"""``/me`` and the agent routes: list, get (id or ``@handle``), query (JSON or SSE)."""

from __future__ import annotations

from flask import Flask, Response, g, request

from . import agent_query, render, routing, streaming
from .auth import require_visible
from .envelope import ApiError, ok
from .pagination import page_params
from .pipeline import current_auth
from .state import current_store


def register(app: Flask) -> None:
    routing.add(app, "me", "/me", me, methods=["GET"], family="strict")
    routing.add(app, "agents", "/agents", list_agents, methods=["GET"], family="strict")
    routing.add(app, "agent", "/agents/<agent_id>", get_agent, methods=["GET"], family="lazy")
    routing.add(
        app, "agent_query", "/agents/<agent_id>/query", query_agent, methods=["POST"], family="lazy"
    )


def me() -> Response:
    store = current_store()
    org = current_auth().org
    assert org is not None  # strict route: the pipeline rejected bad keys
    with store.lock:
        nb_agents = sum(1 for a in store.agents.values() if a.org_id == org.id)
        nb_datastores = sum(1 for d in store.datastores.values() if d.org_id == org.id)
        return ok(render.me(org, store.usage_of(org.id), nb_agents, nb_datastores))


def list_agents() -> Response:
    """All the org's agents, newest first; documented pages with ``page``/``limit``."""
    store = current_store()
    org = current_auth().org
    assert org is not None
    with store.lock:
        agents = [a for a in store.agents.values() if a.org_id == org.id]
        agents.sort(key=lambda a: (a.created_at, a.seq), reverse=True)
        items = [render.agent(a, org) for a in agents]
    if store.legacy:
        return ok(items)
    page, limit = page_params(default_limit=20)
    chunk = items[(page - 1) * limit : page * limit]
    return ok(chunk, meta={"page": page, "limit": limit, "total": len(items)})


def get_agent(agent_id: str) -> Response:
    """Documented 404 for an unknown agent; legacy answers 200 ``null``."""
    store = current_store()
    with store.lock:
        agent = store.find_agent(agent_id)
        if agent is None:
            if store.legacy:
                return ok(None)
            raise ApiError(404, "NOT_FOUND", "Agent not found.")
        require_visible(store, current_auth(), agent.org_id, agent.visibility)
        return ok(render.agent(agent, store.orgs[agent.org_id]))


def query_agent(agent_id: str) -> Response:
    store = current_store()
    body = request.get_json(silent=True)
    streaming_wanted = isinstance(body, dict) and body.get("streaming") is True
    with store.lock:
        agent = store.find_agent(agent_id)
        if agent is None:
            raise ApiError(404, "NOT_FOUND", "Agent not found.")
        require_visible(store, current_auth(), agent.org_id, agent.visibility)
        checked = agent_query.validate(store, body)
        try:
            result = agent_query.run_turn(store, agent, checked)
        except ApiError as error:
            if not streaming_wanted or error.status != 402:
                raise
            return streaming.sse_response(streaming.error_frames(error.code), 0, store.release)
        if not streaming_wanted:
            return ok(result)
        frames = streaming.answer_frames(result, store.settings.stream_chunk_chars)
        delay, release = store.settings.stream_chunk_delay_s, store.release
    for rule in g.get("sim_late_faults", []):
        if rule.kind == "stream_error":
            frames = streaming.broken_frames(frames, rule.code or "INTERNAL")
    return streaming.sse_response(frames, delay, release)
