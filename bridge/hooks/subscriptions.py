"""REST-hook subscriptions: subscribe, look up, unsubscribe, replay, and their history.

A subscription says where to POST a connection's events of one type (for one agent), signed with
its own secret, which is shown once. Zapier (`targetUrl`), Make attach/detach and n8n
create/checkExists/delete all map onto these. Delivering is `bridge.hooks.deliveries`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from bridge.connections import service as connections
from bridge.hooks import detection, event_log
from bridge.hooks.deliveries import message_id
from bridge.infra import crypto, netguard
from bridge.infra.errors import InvalidInput
from bridge.infra.models import Delivery, DeliveryAttempt, Event, Subscription
from bridge.infra.ownership import owned, owned_rows
from bridge.runtime import Runtime
from bridge.upstream.errors import UpstreamForbidden, UpstreamNotFound

log = logging.getLogger(__name__)
HISTORY = 50  # deliveries shown per hook


class HookError(InvalidInput):
    """Raised for a subscription request the bridge refuses; `fields` names the culprit."""


@dataclass(frozen=True)
class NewSubscription:
    subscription: Subscription
    secret: str
    watch_id: int
    # The watch had no active hook: poll it now, a new hook must not wait for the next minute's
    # schedule (a watch that had one is already polled on its beat).
    first_on_watch: bool


def subscribe(
    session: Session,
    runtime: Runtime,
    connection_id: str,
    *,
    target_url: str,
    event_type: str,
    agent_id: str,
) -> NewSubscription:
    """Create a subscription (target checked against SSRF rules) and the watch that feeds it;
    its secret is returned once. The caller commits.

    Only events logged from now on (`start_seq`) that happened from now on are owed to it
    (`event_log.owed`), never the agent's past, even when the watch detects that past only
    after this (say, a watch left unpolled while its agent had no hook, whose cursor is old).

    Raises:
        HookError: when the target URL is not allowed, or ZappWay has no such agent for the key.
        UpstreamError: when ZappWay could not say whether the agent exists.
    """
    try:
        netguard.validate_target(target_url, runtime.settings.allow_private_targets)
    except netguard.UnsafeTarget as exc:
        raise HookError(f"target_url: {exc}", fields=["target_url"]) from exc
    check_agent(runtime, connection_id, agent_id)
    watch_id = detection.ensure_watch(session, connection_id, event_type, agent_id).id
    first_on_watch = not detection.is_watched_in(session, watch_id)
    secret = crypto.new_signing_secret()
    subscription = Subscription(
        id="hook_" + secrets.token_hex(10),
        connection_id=connection_id,
        event_type=event_type,
        agent_id=agent_id,
        target_url=target_url,
        secret_ciphertext=runtime.box.encrypt(secret),
        state="active",
        start_seq=event_log.current_seq(session, connection_id),
    )
    session.add(subscription)
    session.flush()
    return NewSubscription(subscription, secret, watch_id, first_on_watch)


def check_agent(runtime: Runtime, connection_id: str, agent_id: str) -> None:
    """Refuse a hook on an agent ZappWay does not know: it would be polled for nothing (each
    poll a 404 spending the key's budget) and never fire.

    Raises:
        HookError: no such agent, or the key may not read it (names `agent_id`).
        UpstreamError: when ZappWay could not say (503, 429...): the caller may retry.
    """
    zappway = connections.open_zappway(runtime, connection_id)
    try:
        zappway.get_agent(agent_id)
    except UpstreamNotFound as exc:
        raise HookError(
            f"agent_id: ZappWay has no agent {agent_id!r} for this connection's key",
            fields=["agent_id"],
        ) from exc
    except UpstreamForbidden as exc:
        raise HookError(
            "agent_id: this connection's ZappWay key may not read that agent", fields=["agent_id"]
        ) from exc


def describe(subscription: Subscription, failing_reason: str | None = None) -> dict[str, Any]:
    """Public view of a subscription (never its secret); `failing_reason` from `failing`."""
    return {
        "id": subscription.id,
        "event": subscription.event_type,
        "agent_id": subscription.agent_id,
        "target_url": subscription.target_url,
        "state": subscription.state,
        "state_reason": subscription.state_reason,
        "failing": failing_reason,
        "created_at": subscription.created_at.isoformat(),
        "disabled_at": subscription.disabled_at.isoformat() if subscription.disabled_at else None,
    }


def replay(session: Session, subscription: Subscription, since: datetime | None) -> list[int]:
    """Queue every matching event since `since` again (same webhook-ids); returns delivery ids.

    Only events the hook was ever owed (`event_log.owed`): logged and happened after it
    subscribed, never the seeded past; and any it was already sent.
    """
    query = select(Event).where(
        (Event.connection_id == subscription.connection_id)
        & (Event.event_type == subscription.event_type)
        & (Event.seq > subscription.start_seq)
        & (
            (Event.occurred_at >= event_log.owed_from(subscription))
            | exists().where(  # sent to it before this rule existed: still its own
                (Delivery.subscription_id == subscription.id) & (Delivery.event_id == Event.id)
            )
        )
        & Event.seeded.is_(False)
    )
    if subscription.agent_id:
        query = query.where(Event.agent_id == subscription.agent_id)
    if since is not None:
        query = query.where(Event.occurred_at >= since)
    ids = []
    for event in session.scalars(query.order_by(Event.seq)):
        delivery = session.scalar(
            select(Delivery).where(
                (Delivery.subscription_id == subscription.id) & (Delivery.event_id == event.id)
            )
        )
        if delivery is None:
            delivery = Delivery(subscription_id=subscription.id, event_id=event.id)
            session.add(delivery)
        delivery.state, delivery.attempts = "pending", 0
        delivery.next_attempt_at = datetime.now(UTC)
        session.flush()
        ids.append(delivery.id)
    return ids


def find_owned(session: Session, connection_id: str, subscription_id: str) -> Subscription:
    """The connection's live subscription.

    Raises:
        NotFound: missing, deleted, or another connection's.
    """
    return owned(session, Subscription, subscription_id, connection_id, "hook")


def list_owned(session: Session, connection_id: str) -> list[Subscription]:
    return owned_rows(session, Subscription, connection_id)


def unsubscribe(subscription: Subscription) -> None:
    """Stop delivering to the hook (its pending deliveries are cancelled when next due)."""
    subscription.state, subscription.state_reason = "deleted", "unsubscribed"


def reactivate(subscription: Subscription) -> None:
    """A hook disabled by failures becomes active again (its user asked for a replay)."""
    if subscription.state == "disabled":
        subscription.state, subscription.state_reason, subscription.disabled_at = (
            "active", None, None,
        )  # fmt: skip


def failing(session: Session, subscriptions: list[Subscription]) -> dict[str, str]:
    """Active hooks whose newest attempted delivery is waiting for a retry, with the reason its
    last attempt gave (the hook is failing: it will be disabled if the retries run out)."""
    active = [s.id for s in subscriptions if s.state == "active"]
    if not active:
        return {}
    newest = (
        select(func.max(Delivery.id))
        .where(Delivery.subscription_id.in_(active), Delivery.attempts > 0)
        .group_by(Delivery.subscription_id)
    )
    rows = session.execute(
        select(Delivery.subscription_id, Delivery.last_status, Delivery.last_error).where(
            Delivery.id.in_(newest.scalar_subquery()), Delivery.state == "pending"
        )
    )
    return {
        hook_id: error or (f"the target answered {status}" if status else "no answer")
        for hook_id, status, error in rows
    }


def history(session: Session, subscription: Subscription) -> list[dict[str, Any]]:
    """The hook's most recent deliveries, newest first, each with every attempt."""
    deliveries = session.scalars(
        select(Delivery)
        .where(Delivery.subscription_id == subscription.id)
        .order_by(Delivery.id.desc())
        .limit(HISTORY)
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
    return [
        {
            "webhook_id": message_id(d),
            "state": d.state,
            "attempts": by_delivery.get(d.id, []),
        }
        for d in deliveries
    ]
