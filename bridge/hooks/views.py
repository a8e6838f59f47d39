"""HTTP routes for triggers: the polling endpoint and REST-hook subscriptions.

Polling: `GET /v1/triggers/new_conversation` reads the upstream at most once per poll interval
per (connection, agent) and answers from the event log: a bare array, newest first. Hooks:
Zapier (`targetUrl`), Make attach/detach, n8n create/checkExists/delete all map onto
`POST /v1/hooks`, `GET /v1/hooks/<id>`, `DELETE /v1/hooks/<id>`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from marshmallow import fields, pre_load, validate
from sqlalchemy import select

from bridge.connections.views import json_object
from bridge.hooks import detection
from bridge.hooks import event_log as events
from bridge.hooks import subscriptions as hooks
from bridge.infra.models import Delivery, DeliveryAttempt, Subscription
from bridge.infra.storage import get_session
from bridge.operation import Trigger
from bridge.runtime import Runtime
from bridge.schemas import ToolInput, zappway_id
from bridge.upstream.errors import (
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamUnavailable,
)
from bridge.web.auth import current_connection, require_connection
from bridge.web.errors import APIError
from bridge.web.ownership import owned, owned_rows

log = logging.getLogger(__name__)
bp = Blueprint("triggers", __name__)
TARGET_ALIASES = ("targetUrl", "url", "hookUrl", "hook_url", "webhookUrl")
# Faults that pass: a poll then serves the log as it stands. Anything else (bad key, agent gone
# or forbidden, quota) is the user's to fix and is answered as such, never as an empty list.
TRANSIENT = (UpstreamUnavailable, UpstreamProtocolError, UpstreamServerError, UpstreamRateLimited)
EVENT_ALIASES = {"new_conversation": "new_conversation", "conversation.created": "new_conversation"}


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["runtime"]
    return runtime


def register(app: Flask, triggers: tuple[Trigger, ...]) -> None:
    """Add the polling route of every trigger (snake and kebab spellings), then the hooks."""
    for trigger in triggers:
        view = require_connection(_poll_view(trigger))
        for path in {
            f"/v1/triggers/{trigger.key}",
            f"/v1/triggers/{trigger.key.replace('_', '-')}",
        }:
            app.add_url_rule(path, endpoint=f"{path}", view_func=view, methods=["GET"])
    app.register_blueprint(bp)


def _poll_view(trigger: Trigger) -> Callable[[], Response]:
    def view() -> Response:
        """Polling trigger: newest first, stable ids, `?sample=1` for up to 3 items."""
        params = trigger.params_schema().load(request.args.to_dict())
        connection_id = current_connection().id
        _refresh(connection_id, params["agent_id"])
        limit = 3 if params["sample"] else params["limit"]
        items = events.recent(
            get_session(), connection_id, trigger.event_type, params["agent_id"], limit,
            since=params.get("since"), after_id=params.get("after_id"),
        )  # fmt: skip
        if params["sample"] and not items:
            items = [{**item, "is_sample": True} for item in trigger.sample]
        return jsonify(trigger.output_schema(many=True).dump(items))

    view.__name__ = f"poll_{trigger.key}"
    return view


def _refresh(connection_id: str, agent_id: str) -> None:
    """Bring the log up to date; a transient upstream fault serves the log as it stands.

    Raises:
        UpstreamError: for faults that are not transient (401, 402, 403, 404, 422).
    """
    runtime = _runtime()
    try:
        result = detection.refresh(
            runtime, connection_id, agent_id, max_age_s=runtime.settings.poll_interval_s
        )
    except TRANSIENT as exc:
        log.warning("triggers.poll_stale agent=%s reason=%s", agent_id, exc.reason)
        return
    current_app.extensions["tasks"]["enqueue_deliveries"](result.delivery_ids)


class SubscribeIn(ToolInput):
    target_url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    event = fields.String(
        load_default="new_conversation", validate=validate.OneOf(tuple(EVENT_ALIASES))
    )
    agent_id = zappway_id(required=True)  # detection is per agent: without one nothing fires

    @pre_load
    def accept_platform_names(self, data: Any, **_kwargs: Any) -> Any:
        """Zapier sends targetUrl, Make and n8n url or hookUrl: all mean target_url."""
        if isinstance(data, dict) and "target_url" not in data:
            for alias in TARGET_ALIASES:
                if alias in data:
                    data = {**data, "target_url": data[alias]}
                    data.pop(alias)
                    break
        return data


@bp.post("/v1/hooks")
@require_connection
def subscribe() -> tuple[Response, int]:
    """Create a REST hook; the signing secret is in this answer only."""
    data = SubscribeIn().load(json_object())
    connection_id = current_connection().id
    session = get_session()
    watch_id = detection.ensure_watch(session, connection_id, data["agent_id"]).id
    try:
        created = hooks.subscribe(
            session, _runtime(), connection_id,
            target_url=data["target_url"], event_type=EVENT_ALIASES[data["event"]],
            agent_id=data["agent_id"], start_seq=events.current_seq(session, connection_id),
        )  # fmt: skip
    except hooks.HookError as exc:
        raise APIError(422, "invalid_input", exc.message, fields=[exc.field]) from exc
    session.commit()
    current_app.extensions["tasks"]["poll_soon"](watch_id)
    body = {**hooks.describe(created.subscription), "secret": created.secret}
    return jsonify({**body, "expiration_date": None}), 201


def _own(subscription_id: str) -> Subscription:
    return owned(Subscription, subscription_id, "hook")


@bp.get("/v1/hooks")
@require_connection
def list_hooks() -> Response:
    return jsonify([hooks.describe(row) for row in owned_rows(Subscription)])


@bp.get("/v1/hooks/<subscription_id>")
@require_connection
def show_hook(subscription_id: str) -> Response:
    """One hook with its recent deliveries and their attempts (n8n's checkExists uses it)."""
    subscription = _own(subscription_id)
    session = get_session()
    deliveries = session.scalars(
        select(Delivery)
        .where(Delivery.subscription_id == subscription.id)
        .order_by(Delivery.id.desc())
        .limit(50)
    ).all()
    attempts = session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_([d.id for d in deliveries]))
        .order_by(DeliveryAttempt.id)
    ).all()
    by_delivery: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt.delivery_id, []).append(
            {
                "at": attempt.attempted_at.isoformat(),
                "status": attempt.status,
                "latency_ms": attempt.latency_ms,
                "error": attempt.error,
            }
        )
    return jsonify(
        {
            **hooks.describe(subscription),
            "deliveries": [
                {
                    "webhook_id": hooks.message_id(d),
                    "state": d.state,
                    "attempts": by_delivery.get(d.id, []),
                }
                for d in deliveries
            ],
        }
    )


@bp.delete("/v1/hooks/<subscription_id>")
@require_connection
def unsubscribe(subscription_id: str) -> tuple[str, int]:
    subscription = _own(subscription_id)
    subscription.state, subscription.state_reason = "deleted", "unsubscribed"
    get_session().commit()
    return "", 204


@bp.post("/v1/hooks/<subscription_id>/replay")
@require_connection
def replay(subscription_id: str) -> tuple[Response, int]:
    """Send again every event since `?since=` (ISO 8601; all when absent), same webhook-ids."""
    subscription = _own(subscription_id)
    since = None
    if request.args.get("since"):
        since = fields.AwareDateTime().deserialize(request.args["since"])
    session = get_session()
    if subscription.state == "disabled":
        subscription.state, subscription.state_reason, subscription.disabled_at = (
            "active",
            None,
            None,
        )
    ids = hooks.replay(session, subscription, since)
    session.commit()
    current_app.extensions["tasks"]["enqueue_deliveries"](ids)
    return jsonify({"replayed": len(ids)}), 202
