"""HTTP routes generated from the registry: `POST /v1/actions/<key>`, jobs, and dropdown sources.

Each action request reads as a recipe: authenticate, parse, validate, honour Idempotency-Key,
then run (at once, within the deadline, or as a job answering a callback), dump, answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from marshmallow import Schema, fields, validate

from bridge.connections.views import json_object
from bridge.infra import netguard
from bridge.infra.models import Job
from bridge.infra.storage import get_session
from bridge.operation import Action
from bridge.runs import jobs
from bridge.runs.idempotency import IdempotencyStore, StoredResponse, request_hash
from bridge.runtime import Runtime
from bridge.upstream.zappway import ZappWay
from bridge.web import context
from bridge.web.auth import current_connection, require_connection
from bridge.web.errors import APIError, translate

bp = Blueprint("actions", __name__)
TRANSIENT = (429, 500, 502, 503, 504)
DEADLINE_CODE = "action_timeout"
FINISHED = ("succeeded", "failed")


def register(app: Flask, actions: tuple[Action, ...]) -> None:
    """Add one POST route per action, then the job and dropdown routes."""
    for action in actions:
        app.add_url_rule(
            f"/v1/actions/{action.key}",
            endpoint=f"action_{action.key}",
            view_func=require_connection(_action_view(action)),
            methods=["POST"],
        )
    app.register_blueprint(bp)


def _action_view(action: Action) -> Callable[[], Response]:
    def view() -> Response:
        connection = current_connection()
        payload = json_object()
        data = action.input_schema().load(payload)
        key = request.headers.get("Idempotency-Key")
        if not key:
            return _respond(*_run(action, connection.id, data))
        store = IdempotencyStore(current_app.extensions["sessions"], connection.id)
        stored = store.claim(key.strip(), request_hash(action.key, payload), _wait_budget())
        if stored is not None:
            response = _respond(*_replayed(stored, connection.id))
            response.headers["Idempotent-Replayed"] = "true"
            return response
        try:
            status, body = _run(action, connection.id, data)
        except Exception as exc:
            info = translate(exc)
            transient = info.status in TRANSIENT or info.status >= 500
            if transient and info.code != DEADLINE_CODE:
                store.release(key.strip())
            else:  # a final answer, or a run past its deadline whose job the retries follow
                store.complete(key.strip(), info.status, info.body())
            raise
        store.complete(key.strip(), status, body)
        return _respond(status, body)

    view.__name__ = f"action_{action.key}"
    view.__doc__ = action.description
    return view


def _replayed(stored: StoredResponse, connection_id: str) -> tuple[int, Any]:
    """The stored answer; a deadline 504 gives way to its job's outcome once the job finished."""
    error = stored.body.get("error") if isinstance(stored.body, dict) else None
    if not isinstance(error, dict) or error.get("code") != DEADLINE_CODE:
        return stored.status, stored.body
    job = get_session().get(Job, str(error.get("job_id")))
    if job is None or job.connection_id != connection_id or job.state not in FINISHED:
        return stored.status, stored.body
    outcome = jobs.view(job)
    if job.state == "succeeded":
        return 200, outcome.get("result")
    failure = dict(outcome.get("error") or {})
    return int(failure.pop("status", 502)), {"error": failure}


def _run(action: Action, connection_id: str, data: dict[str, Any]) -> tuple[int, Any]:
    runtime: Runtime = current_app.extensions["runtime"]
    callback_url = data.pop("callback_url", None)
    if callback_url:
        return 202, _start_job(action, connection_id, data, callback_url)
    if not action.long_running:
        return 200, jobs.execute(runtime, action, connection_id, data)
    try:
        return 200, current_app.extensions["deadline_runner"].run(action, connection_id, data)
    except jobs.JobStillRunning as pending:
        raise APIError(
            504, DEADLINE_CODE,
            f"ZappWay is still answering; fetch the result from /v1/jobs/{pending.job_id}",
            job_id=pending.job_id, status_url=f"/v1/jobs/{pending.job_id}",
        ) from None  # fmt: skip


def _start_job(
    action: Action, connection_id: str, data: dict[str, Any], url: str
) -> dict[str, Any]:
    settings = context.settings()
    try:
        netguard.validate_target(url, settings.allow_private_targets)
    except netguard.UnsafeTarget as exc:
        raise APIError(
            422, "invalid_input", f"callback_url: {exc}", fields=["callback_url"]
        ) from exc
    job_id = jobs.new_job_id()
    session = get_session()
    jobs.create(session, job_id, connection_id, action.key, data, url, "pending")
    session.commit()
    current_app.extensions["tasks"]["run_job"](job_id)
    return {"job_id": job_id, "status": "pending", "status_url": f"/v1/jobs/{job_id}"}


def _wait_budget() -> float:
    return context.settings().action_deadline_s + 5


def _respond(status: int, body: Any) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


@bp.get("/v1/jobs/<job_id>")
@require_connection
def job_status(job_id: str) -> Response:
    """Poll a job (Make polls; Zapier and n8n get callbacks)."""
    job = get_session().get(Job, job_id)
    if job is None or job.connection_id != current_connection().id:
        raise APIError(404, "not_found", "No such job for this connection")
    return jsonify(jobs.view(job))


class ListQuery(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10_000))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    format = fields.String(load_default="items", validate=validate.OneOf(("items", "options")))


def _dropdown(items: list[dict[str, Any]]) -> Response:
    query = ListQuery().load(request.args.to_dict())
    start = (query["page"] - 1) * query["limit"]
    page = items[start : start + query["limit"]]
    if query["format"] == "options":
        body: list[dict[str, Any]] = [{"label": i["name"], "value": i["id"]} for i in page]
    else:
        body = [{"id": i["id"], "name": i["name"]} for i in page]
    response = jsonify(body)
    response.headers["X-Total-Count"] = str(len(items))
    return response


def _zappway() -> ZappWay:
    runtime: Runtime = current_app.extensions["runtime"]
    with runtime.action_context(current_connection().id) as ctx:
        return ctx.zappway


@bp.get("/v1/agents")
@require_connection
def agents() -> Response:
    """Dropdown source: the connection's agents, `[{id, name}]` or `[{label, value}]`."""
    return _dropdown(_zappway().list_agents())


@bp.get("/v1/datastores")
@require_connection
def datastores() -> Response:
    """Dropdown source: the connection's datastores."""
    return _dropdown(_zappway().list_datastores())
