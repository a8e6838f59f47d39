"""The ``/__admin`` API: test control that exists only in the simulator (JSON, no auth).

Admin calls are not rate limited, faulted or written to the request log.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from . import factory, render
from .faults import parse_rule
from .seed import org_dict, seed_demo
from .state import current_store

bp = Blueprint("zappway_admin", __name__, url_prefix="/__admin")


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@bp.errorhandler(AdminError)
def _admin_error(error: AdminError) -> tuple[Response, int]:
    return jsonify({"error": error.message}), error.status


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise AdminError(400, "body must be a JSON object")
    return body


def _guard(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a factory call under the lock, mapping its errors to 400/404."""
    try:
        with current_store().lock:
            return call(*args, **kwargs)
    except LookupError as exc:
        raise AdminError(404, str(exc)) from exc
    except (ValueError, TypeError) as exc:
        raise AdminError(400, str(exc)) from exc


@bp.post("/reset")
def reset() -> Response:
    current_store().reset()
    return jsonify({"reset": True})


@bp.post("/seed")
def seed() -> Response:
    return jsonify(_guard(seed_demo, current_store(), _body().get("plan", "free")))


@bp.route("/profile", methods=["GET", "POST"])
def profile() -> Response:
    store = current_store()
    if request.method == "POST":
        _guard(store.set_profile, _body().get("profile"))
    return jsonify({"profile": store.profile})


@bp.route("/orgs", methods=["GET", "POST"])
def orgs() -> Response:
    store = current_store()
    if request.method == "GET":
        with store.lock:
            return jsonify([org_dict(o) for o in store.orgs.values()])
    body = _body()
    org = _guard(
        factory.create_org, store, body.get("name"), body.get("plan", "free"), body.get("id")
    )
    return jsonify(org_dict(org))


def _key_dict(record: Any) -> dict[str, Any]:
    return {
        "key": record.key,
        "org_id": record.org_id,
        "rate_limit": record.rate_limit,
        "revoked": record.revoked,
    }


@bp.route("/keys", methods=["GET", "POST"])
def keys() -> Response:
    store = current_store()
    if request.method == "GET":
        with store.lock:
            return jsonify([_key_dict(k) for k in store.keys.values()])
    body = _body()
    record = _guard(
        factory.create_key, store, body.get("org_id"), body.get("key"), body.get("rate_limit")
    )
    return jsonify(_key_dict(record))


@bp.post("/keys/<key>/revoke")
def revoke_key(key: str) -> tuple[str, int]:
    store = current_store()
    with store.lock:
        record = store.keys.get(key)
        if record is None:
            raise AdminError(404, "unknown key")
        record.revoked = True
    return "", 204


@bp.post("/agents")
def agents() -> Response:
    store = current_store()
    body = _body()
    options = {
        k: body[k]
        for k in (
            "visibility",
            "datastore_ids",
            "handle",
            "pending_approval",
            "model_name",
            "description",
        )
        if k in body
    }
    agent = _guard(factory.create_agent, store, body.get("org_id"), body.get("name"), **options)
    return jsonify(render.agent(agent, store.orgs[agent.org_id]))


@bp.delete("/agents/<agent_id>")
def delete_agent(agent_id: str) -> tuple[str, int]:
    """Make an agent disappear, as when its owner deletes it in the dashboard: from now on the
    agent routes answer "not found" (404, or legacy ``null``). Its conversations stay stored."""
    store = current_store()
    with store.lock:
        if store.agents.pop(agent_id, None) is None:
            raise AdminError(404, "unknown agent")
    return "", 204


@bp.post("/datastores")
def datastores() -> Response:
    store = current_store()
    body = _body()
    datastore = _guard(
        factory.create_datastore,
        store,
        body.get("org_id"),
        body.get("name"),
        body.get("visibility") or "private",
        body.get("documents"),
    )
    with store.lock:
        return jsonify(render.datastore(datastore, len(store.documents_of(datastore.id))))


@bp.get("/datastores/<datastore_id>/documents")
def datastore_documents(datastore_id: str) -> Response:
    """Every document of a datastore with its full text: what a soak or a test compares
    against what it sent (the API's datastore listing pages and carries no text)."""
    store = current_store()
    with store.lock:
        if datastore_id not in store.datastores:
            raise AdminError(404, "unknown datastore")
        return jsonify(
            [
                {
                    "id": doc.id,
                    "external_id": doc.external_id,
                    "name": doc.name,
                    "text": doc.text,
                    "metadata": doc.metadata,
                }
                for doc in store.documents_of(datastore_id)
            ]
        )


@bp.post("/conversations")
def conversations() -> Response:
    store = current_store()
    body = _body()
    names = (
        "id",
        "created_at",
        "updated_at",
        "channel",
        "visitor_id",
        "messages",
        "lead",
        "status",
        "priority",
        "title",
    )
    options = {k: body[k] for k in names if k in body}
    conv = _guard(factory.create_conversation, store, body.get("agent_id"), **options)
    return jsonify(render.conversation(conv, recent_messages=len(conv.messages)))


def _conversation(conv_id: str) -> Any:
    conv = current_store().conversations.get(conv_id)
    if conv is None:
        raise AdminError(404, "unknown conversation")
    return conv


@bp.post("/conversations/<conv_id>/touch")
def touch(conv_id: str) -> Response:
    """Add a message (``{"from"?, "text"?, "at"?}``) and move ``updatedAt`` to its time."""
    store = current_store()
    body = _body()
    with store.lock:
        conv = _conversation(conv_id)
        at = body.get("at", store.now())
        if not isinstance(at, int | float):
            raise AdminError(400, "at must be epoch seconds")
        sender = body.get("from", "human")
        if sender not in ("human", "agent"):
            raise AdminError(400, "from must be 'human' or 'agent'")
        factory.add_message(store, conv, sender, str(body.get("text", "touched")), float(at))
        conv.updated_at = float(at)
        return jsonify(render.conversation(conv))


@bp.post("/conversations/<conv_id>/ai")
def set_ai(conv_id: str) -> Response:
    store = current_store()
    enabled = _body().get("enabled")
    if not isinstance(enabled, bool):
        raise AdminError(400, "enabled must be a boolean")
    with store.lock:
        conv = _conversation(conv_id)
        conv.ai_enabled = enabled
        return jsonify(render.conversation(conv))


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Response:
    store = current_store()
    if request.method == "POST":
        _guard(store.apply_settings, _body())
    with store.lock:
        return jsonify(store.settings.as_dict())


@bp.route("/faults", methods=["GET", "POST", "DELETE"])
def faults() -> Response | tuple[str, int]:
    store = current_store()
    if request.method == "DELETE":
        with store.lock:
            store.faults.reset()
            store.release_waiters()
        return "", 204
    if request.method == "GET":
        with store.lock:
            return jsonify([rule.as_dict() for rule in store.faults.rules])
    body = _body()
    with store.lock:
        rule = _guard(parse_rule, store.ids.new_id(), body)
        store.faults.rules.append(rule)
    return jsonify({"id": rule.id})


@bp.route("/clock", methods=["GET", "POST"])
def clock() -> Response:
    store = current_store()
    body = _body() if request.method == "POST" else {}
    with store.lock:
        for name in ("advance", "set"):
            value = body.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise AdminError(400, f"{name} must be a number")
        if body.get("set") is not None:
            store.clock.set(float(body["set"]))
        if body.get("advance") is not None:
            store.clock.advance(float(body["advance"]))
        return jsonify({"now": store.now()})


@bp.route("/requests", methods=["GET", "DELETE"])
def requests_log() -> Response | tuple[str, int]:
    store = current_store()
    with store.lock:
        if request.method == "DELETE":
            store.log.clear()
            return "", 204
        try:
            since = int(request.args.get("since", "0"))
        except ValueError as exc:
            raise AdminError(400, "since must be an integer") from exc
        return jsonify(store.log.since(since))
