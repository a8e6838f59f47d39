"""HTTP routes for triggers: the polling endpoints and REST-hook subscriptions.

Polling: `GET /v1/triggers/<key>` reads the upstream at most once per poll interval per
(connection, trigger, agent) and answers from the event log: a bare array, newest first. Hooks:
Zapier (`targetUrl`), Make attach/detach, n8n create/checkExists/delete all map onto
`POST /v1/hooks`, `GET /v1/hooks/<id>`, `DELETE /v1/hooks/<id>`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from flask import Blueprint, Flask, Response, jsonify, request
from marshmallow import EXCLUDE, Schema, fields, pre_load, validate

from bridge.hooks import detection, event_log
from bridge.hooks import subscriptions as hooks
from bridge.hooks.tasks import HookTasks
from bridge.operation import Trigger
from bridge.registry import TRIGGERS
from bridge.schemas import ToolInput, zappway_id
from bridge.upstream.errors import (
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamUnavailable,
)
from bridge.web.api import READ_ERRORS, Answer, Endpoint, endpoint
from bridge.web.auth import current_caller, require_connection
from bridge.web.body import json_object
from bridge.web.context import get_session, runtime, service

log = logging.getLogger(__name__)
bp = Blueprint("triggers", __name__)
TARGET_ALIASES = ("targetUrl", "url", "hookUrl", "hook_url", "webhookUrl")
# Faults that pass: a poll then serves the log as it stands. Anything else (bad key, agent gone
# or forbidden, quota) is the user's to fix and is answered as such, never as an empty list.
TRANSIENT = (UpstreamUnavailable, UpstreamProtocolError, UpstreamServerError, UpstreamRateLimited)
# The events a hook can subscribe to are the registry's triggers; an early name of
# new_conversation is still accepted from old subscriptions but documented nowhere.
EVENT_TYPES = tuple(trigger.event_type for trigger in TRIGGERS)
LEGACY_EVENT_NAMES = {"conversation.created": "new_conversation"}


def register(app: Flask, triggers: tuple[Trigger, ...]) -> None:
    """Add the polling route of every trigger (snake and kebab spellings), then the hooks."""
    for trigger in triggers:
        view = endpoint(_poll_endpoint(trigger))(require_connection(_poll_view(trigger)))
        snake = f"/v1/triggers/{trigger.key}"
        for path in dict.fromkeys((snake, snake.replace("_", "-"))):  # the API documents the first
            app.add_url_rule(path, endpoint=f"{path}", view_func=view, methods=["GET"])
    app.register_blueprint(bp)


def _poll_endpoint(trigger: Trigger) -> Endpoint:
    return Endpoint(
        trigger.label, {200: Answer(trigger.output_schema, many=True)}, READ_ERRORS,
        query=trigger.params_schema, operation_id=f"poll_{trigger.key}",
        description=trigger.description,
    )  # fmt: skip


def _poll_view(trigger: Trigger) -> Callable[[], Response]:
    def view() -> Response:
        """Polling trigger: newest first, stable ids, `?sample=1` for up to 3 items."""
        params = trigger.params_schema().load(request.args.to_dict())
        connection_id = current_caller().id
        _refresh(trigger, connection_id, params["agent_id"])
        limit = 3 if params["sample"] else params["limit"]
        items = event_log.recent(
            get_session(), connection_id, trigger.event_type, params["agent_id"], limit,
            since=params.get("since"), after_id=params.get("after_id"),
        )  # fmt: skip
        if params["sample"] and not items:
            items = [{**item, "is_sample": True} for item in trigger.sample]
        return jsonify(trigger.output_schema(many=True).dump(items))

    view.__name__ = f"poll_{trigger.key}"
    return view


def _refresh(trigger: Trigger, connection_id: str, agent_id: str) -> None:
    """Bring the log up to date; a transient upstream fault serves the log as it stands.

    Raises:
        UpstreamError: for faults that are not transient (401, 402, 403, 404, 422).
    """
    max_age_s = runtime().settings.poll_interval_s
    try:
        result = detection.refresh(runtime(), trigger, connection_id, agent_id, max_age_s)
    except TRANSIENT as exc:
        log.warning("triggers.poll_stale agent=%s reason=%s", agent_id, exc.code)
        return
    service(HookTasks).deliver(result.delivery_ids)


class SubscribeIn(ToolInput):
    # Zapier sends targetUrl, Make and n8n url or hookUrl: all mean target_url.
    ALIASES: ClassVar[Mapping[str, tuple[str, ...]]] = {"target_url": TARGET_ALIASES}

    target_url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    event = fields.String(load_default=EVENT_TYPES[0], validate=validate.OneOf(EVENT_TYPES))
    agent_id = zappway_id(required=True)  # detection is per agent: without one nothing fires

    @pre_load
    def accept_legacy_event_names(self, data: Any, **_kwargs: Any) -> Any:
        """Subscriptions made with an early name of the event keep working (undocumented)."""
        if isinstance(data, dict) and data.get("event") in LEGACY_EVENT_NAMES:
            data = {**data, "event": LEGACY_EVENT_NAMES[data["event"]]}
        return data


class HookOut(Schema):
    id = fields.String(required=True)
    event = fields.String(required=True)
    agent_id = fields.String(allow_none=True, required=True)
    target_url = fields.String(required=True)
    state = fields.String(required=True)
    state_reason = fields.String(allow_none=True, required=True)
    failing = fields.String(allow_none=True, required=True, metadata={
        "description": "While the newest delivery waits for a retry, why its last attempt "
        "failed (the hook is disabled if the retries run out); null otherwise."
    })  # fmt: skip
    created_at = fields.String(required=True)
    disabled_at = fields.String(allow_none=True, required=True)


class HookCreated(HookOut):
    secret = fields.String(required=True, metadata={"description": "Shown once: verify with it"})
    expiration_date = fields.String(allow_none=True, required=True)


class Attempt(Schema):
    at = fields.String(required=True)
    status = fields.Integer(allow_none=True, required=True)
    latency_ms = fields.Integer(required=True)
    error = fields.String(allow_none=True, required=True)


class DeliveryOut(Schema):
    webhook_id = fields.String(required=True)
    state = fields.String(required=True)
    attempts = fields.List(fields.Nested(Attempt), required=True)


class HookDetail(HookOut):
    deliveries = fields.List(fields.Nested(DeliveryOut), required=True)


class ReplayQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    since = fields.AwareDateTime(metadata={"description": "Only events since (ISO 8601)"})


class Replayed(Schema):
    replayed = fields.Integer(required=True)


@bp.post("/v1/hooks")
@endpoint(Endpoint(
    "Subscribe a REST hook (secret shown once)", {201: Answer(HookCreated, "Created")},
    (400, 401, 413, 422, 429, 502, 503, 504), body=SubscribeIn,  # 429, 5xx: the agent check
))  # fmt: skip
@require_connection
def subscribe() -> tuple[Response, int]:
    """Create a REST hook; the signing secret is in this answer only."""
    data = SubscribeIn().load(json_object())
    session = get_session()
    created = hooks.subscribe(
        session, runtime(), current_caller().id, target_url=data["target_url"],
        event_type=data["event"], agent_id=data["agent_id"],
    )  # fmt: skip
    session.commit()
    service(HookTasks).poll_soon(created)
    body = {**hooks.describe(created.subscription), "secret": created.secret}
    return jsonify({**body, "expiration_date": None}), 201


@bp.get("/v1/hooks")
@endpoint(Endpoint("List hooks", {200: Answer(HookOut, many=True)}, (401,)))
@require_connection
def list_hooks() -> Response:
    session = get_session()
    rows = hooks.list_owned(session, current_caller().id)
    failing = hooks.failing(session, rows)
    return jsonify([hooks.describe(row, failing.get(row.id)) for row in rows])


@bp.get("/v1/hooks/<subscription_id>")
@endpoint(Endpoint("A hook and its deliveries", {200: Answer(HookDetail)}, (401, 404)))
@require_connection
def show_hook(subscription_id: str) -> Response:
    """One hook with its recent deliveries and their attempts (n8n's checkExists uses it)."""
    session = get_session()
    subscription = hooks.find_owned(session, current_caller().id, subscription_id)
    history = hooks.history(session, subscription)
    failing = hooks.failing(session, [subscription]).get(subscription.id)
    return jsonify({**hooks.describe(subscription, failing), "deliveries": history})


@bp.delete("/v1/hooks/<subscription_id>")
@endpoint(Endpoint("Unsubscribe", {204: Answer(None, "Deleted")}, (401, 404)))
@require_connection
def unsubscribe(subscription_id: str) -> tuple[str, int]:
    session = get_session()
    hooks.unsubscribe(hooks.find_owned(session, current_caller().id, subscription_id))
    session.commit()
    return "", 204


@bp.post("/v1/hooks/<subscription_id>/replay")
@endpoint(Endpoint(
    "Send events again", {202: Answer(Replayed, "Queued")}, (401, 404, 422), query=ReplayQuery
))  # fmt: skip
@require_connection
def replay(subscription_id: str) -> tuple[Response, int]:
    """Send again every event since `?since=` (ISO 8601; all when absent), same webhook-ids."""
    session = get_session()
    subscription = hooks.find_owned(session, current_caller().id, subscription_id)
    since = ReplayQuery().load(request.args.to_dict()).get("since")
    hooks.reactivate(subscription)
    ids = hooks.replay(session, subscription, since)
    session.commit()
    service(HookTasks).deliver(ids)
    return jsonify({"replayed": len(ids)}), 202
