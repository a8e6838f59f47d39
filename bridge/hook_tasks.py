"""Worker tasks for triggers: poll watched agents, deliver events, recover lost work.

`schedule_polls` runs every minute and schedules one `poll_watch` per watched agent at each
poll-interval offset inside that minute (Huey's periodic tasks are minute-grained); a new hook's
watch gets the same at once (`poll_soon`), so it is not left unpolled until the next minute. The
watch lease turns duplicates from several workers into no-ops. `deliver` makes one attempt and
schedules the next; `sweep` re-enqueues due deliveries whose task was lost (a killed worker).
"""

from __future__ import annotations

import logging
from typing import Any

from huey import Huey, crontab
from sqlalchemy import or_, select

from bridge import detection, hooks
from bridge.connections import ConnectionRevoked
from bridge.models import Connection, Subscription, Watch
from bridge.runtime import Runtime
from bridge.upstream_errors import UpstreamError

log = logging.getLogger(__name__)


def watched(runtime: Runtime) -> list[int]:
    """Watches with at least one active subscription, on live connections."""
    with runtime.sessions() as session:
        subscribed = (
            select(Subscription.id)
            .where(Subscription.connection_id == Watch.connection_id)
            .where(Subscription.state == "active")
            .where(or_(Subscription.agent_id.is_(None), Subscription.agent_id == Watch.agent_id))
            .exists()
        )
        live = select(Connection.id).where(
            (Connection.id == Watch.connection_id) & Connection.revoked_at.is_(None)
        )
        query = select(Watch.id).where(subscribed).where(Watch.connection_id.in_(live))
        return list(session.scalars(query))


def register(huey: Huey, runtime: Runtime) -> dict[str, Any]:
    interval = runtime.settings.poll_interval_s

    @huey.task(name="deliver")  # type: ignore[untyped-decorator]  # huey is untyped
    def deliver(delivery_id: int) -> None:
        delay = hooks.attempt_delivery(runtime, delivery_id)
        if delay is not None:
            deliver.schedule((delivery_id,), delay=delay)

    def enqueue_deliveries(ids: list[int]) -> None:
        for delivery_id in ids:
            deliver(delivery_id)

    @huey.task(name="poll_watch")  # type: ignore[untyped-decorator]  # huey is untyped
    def poll_watch(watch_id: int) -> None:
        with runtime.sessions() as session:
            watch = session.get(Watch, watch_id)
            if watch is None:
                return
            connection_id, agent_id = watch.connection_id, watch.agent_id
        try:
            result = detection.refresh(runtime, connection_id, agent_id, max_age_s=interval * 0.8)
        except (UpstreamError, ConnectionRevoked) as exc:
            log.warning("detection.failed agent=%s error=%s", agent_id, type(exc).__name__)
            return
        enqueue_deliveries(result.delivery_ids)

    offsets = list(range(0, 60, max(1, int(interval))))

    def poll_soon(watch_id: int) -> None:
        """Poll a new hook's watch now and every interval until `schedule_polls` takes over."""
        for offset in offsets:
            poll_watch.schedule((watch_id,), delay=offset)

    @huey.periodic_task(crontab(minute="*"), name="schedule_polls")  # type: ignore[untyped-decorator]
    def schedule_polls() -> None:
        for watch_id in watched(runtime):
            poll_soon(watch_id)

    @huey.periodic_task(crontab(minute="*"), name="sweep_deliveries")  # type: ignore[untyped-decorator]
    def sweep_deliveries() -> None:
        with runtime.sessions() as session:
            due = hooks.due_deliveries(session)
        if due:
            log.info("hooks.sweep requeued=%d", len(due))
        enqueue_deliveries(due)

    return {
        "deliver": deliver,
        "enqueue_deliveries": enqueue_deliveries,
        "poll_watch": poll_watch,
        "poll_soon": poll_soon,
        "schedule_polls": schedule_polls,
        "sweep_deliveries": sweep_deliveries,
    }
