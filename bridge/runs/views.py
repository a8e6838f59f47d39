"""HTTP routes of action runs: `POST /v1/actions/<key>` from the registry, jobs, dropdowns.

Each action request reads as a recipe: authenticate, parse, run (`bridge.runs.calls`: at once,
within the deadline, or as a job answering a callback; Idempotency-Key replays), answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from marshmallow import Schema, fields

from bridge.connections import service as connections
from bridge.operation import Action
from bridge.runs import calls, dropdowns, jobs
from bridge.runs.dropdowns import ListQuery
from bridge.runs.runner import ActionRunner
from bridge.runs.tasks import RunTasks
from bridge.web.api import (
    AUTHED_ERRORS,
    READ_ERRORS,
    Answer,
    Endpoint,
    Header,
    ResponseHeader,
    endpoint,
)
from bridge.web.auth import current_caller, require_connection
from bridge.web.body import json_object
from bridge.web.context import absolute_url, get_session, runtime, service

bp = Blueprint("actions", __name__)


IDEMPOTENCY_KEY = Header(
    "Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 255},
    "Retries with the same key and body get the stored answer (Idempotent-Replayed: true)",
)  # fmt: skip


class JobOut(Schema):
    job_id = fields.String(required=True)
    action = fields.String(required=True)
    status = fields.String(required=True)
    result = fields.Raw()
    error = fields.Dict()
    runs = fields.Integer(
        metadata={"description": "Present when a queued job ran more than once (its worker "
                  "stopped mid-run): ZappWay may have been asked, and billed, once per run"}
    )  # fmt: skip
    callback = fields.Dict()


class JobAccepted(Schema):
    job_id = fields.String(required=True)
    status = fields.String(required=True)
    status_url = fields.String(required=True)


class DropdownItem(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)


class DropdownOption(Schema):
    """An item with `format=options` (what Make and n8n option lists take)."""

    label = fields.String(required=True)
    value = fields.String(required=True)


DROPDOWN_PAGE = Answer(
    {"anyOf": [DropdownItem, DropdownOption]}, many=True,
    headers={"X-Total-Count": ResponseHeader(
        {"type": "integer", "minimum": 0}, "Items on all pages (pages count from 1)"
    )},
)  # fmt: skip
# An action's answer replayed for a repeated Idempotency-Key says so.
REPLAYED = {"Idempotent-Replayed": ResponseHeader(
    {"type": "string", "enum": ["true"]},
    "Present on the stored answer to a repeated Idempotency-Key (no second upstream call)",
    required=False,
)}  # fmt: skip


def register(app: Flask, actions: tuple[Action, ...]) -> None:
    """Add one POST route per action, then the job and dropdown routes."""
    for action in actions:
        view = endpoint(_action_endpoint(action))(require_connection(_action_view(action)))
        app.add_url_rule(
            f"/v1/actions/{action.key}",
            endpoint=f"action_{action.key}",
            view_func=view,
            methods=["POST"],
        )
    app.register_blueprint(bp)


def _action_endpoint(action: Action) -> Endpoint:
    answers = {200: Answer(action.output_schema, many=action.many, headers=REPLAYED)}
    if action.long_running:
        answers[202] = Answer(
            JobAccepted, "Accepted: the result goes to callback_url", headers=REPLAYED
        )
    return Endpoint(
        action.label, answers, AUTHED_ERRORS, body=action.input_schema,
        headers=(IDEMPOTENCY_KEY,), operation_id=action.key, description=action.description,
    )  # fmt: skip


def _action_view(action: Action) -> Callable[[], Response]:
    def view() -> Response:
        answer = calls.answer(
            service(ActionRunner), service(RunTasks).start_job, action,
            current_caller(), json_object(), request.headers.get("Idempotency-Key"),
        )  # fmt: skip
        response = jsonify(_absolute_status_url(answer.body))
        response.status_code = answer.status
        if answer.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response

    view.__name__ = f"action_{action.key}"
    view.__doc__ = action.description
    return view


def _absolute_status_url(body: Any) -> Any:
    """A 202's `status_url` (stored as a path, so replays survive a change of host) made
    absolute against the URL this request came in on."""
    if isinstance(body, dict) and str(body.get("status_url", "")).startswith("/"):
        return {**body, "status_url": absolute_url(body["status_url"])}
    return body


@bp.get("/v1/jobs/<job_id>")
@endpoint(Endpoint("Poll a job", {200: Answer(JobOut)}, (401, 404)))
@require_connection
def job_status(job_id: str) -> Response:
    """Poll a job (Make polls; Zapier and n8n get callbacks)."""
    return jsonify(jobs.view(jobs.find(get_session(), job_id, current_caller().id)))


def _dropdown(items: list[dict[str, Any]]) -> Response:
    shown = dropdowns.page(items, ListQuery().load(request.args.to_dict()))
    response = jsonify(shown.items)
    response.headers["X-Total-Count"] = str(shown.total)
    return response


@bp.get("/v1/agents")
@endpoint(Endpoint(
    "Dropdown source: agents", {200: DROPDOWN_PAGE}, READ_ERRORS,
    query=ListQuery,
))  # fmt: skip
@require_connection
def agents() -> Response:
    """Dropdown source: the connection's agents, `[{id, name}]` or `[{label, value}]`."""
    zappway = connections.zappway_for(runtime(), current_caller())
    return _dropdown(zappway.list_agents())


@bp.get("/v1/datastores")
@endpoint(Endpoint(
    "Dropdown source: datastores", {200: DROPDOWN_PAGE}, READ_ERRORS,
    query=ListQuery,
))  # fmt: skip
@require_connection
def datastores() -> Response:
    """Dropdown source: the connection's datastores."""
    zappway = connections.zappway_for(runtime(), current_caller())
    return _dropdown(zappway.list_datastores())
