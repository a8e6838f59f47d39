"""Worker tasks for triggers: poll watched agents, deliver events, recover lost work.

`schedule_polls` runs every minute and schedules one `poll_watch` per watched agent at each
poll-interval offset inside that minute (Huey's periodic tasks are minute-grained), shifted by
the watch's own phase so watches do not all poll at once; a new hook's watch gets the same at once
(`poll_soon`), so it is not left unpolled until the next minute. The watch lease turns duplicates
from several workers into no-ops. `deliver_batch` makes the first attempts of a fan-out together
and `deliver` each retry; `sweep` re-enqueues due deliveries whose task was lost (a killed
worker).
"""

from __future__ import annotations

import logging
from typing import Any

from huey import Huey, crontab
from sqlalchemy import or_, select

from bridge.connections.service import ConnectionRevoked
from bridge.hooks import detection
from bridge.hooks import subscriptions as hooks
from bridge.infra.models import Connection, Subscription, Watch
from bridge.runtime import Runtime
from bridge.upstream.errors import UpstreamError

log = logging.getLogger(__name__)
GOLDEN_RATIO_FRACTION = 0.6180339887498949
DELIVERY_BATCH = 25  # deliveries per task: a fan-out to 100 hooks is 4 tasks, not 100


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


def poll_phase(watch_id: int, interval: float) -> float:
    """Seconds into each interval at which this watch is polled.

    Spread over the interval (a golden-ratio sequence over watch ids) so that watches do not all
    poll, and fan out to their hooks, at the same instant: 10 agents with 100 hooks each would
    otherwise send 2,000 deliveries in one burst every interval and the last ones would wait.
    """
    return (watch_id * GOLDEN_RATIO_FRACTION) % 1.0 * interval


def register(huey: Huey, runtime: Runtime) -> dict[str, Any]:
    interval = runtime.settings.poll_interval_s

    @huey.task(name="deliver")  # type: ignore[untyped-decorator]  # huey is untyped
    def deliver(delivery_id: int) -> None:
        """One delivery's retry (or a single new one)."""
        deliver_batch.call_local([delivery_id])  # here, not one more trip through the queue

    @huey.task(name="deliver_batch")  # type: ignore[untyped-decorator]  # huey is untyped
    def deliver_batch(delivery_ids: list[int]) -> None:
        """First attempts of a fan-out; each delivery that must retry is scheduled alone."""
        for delivery_id, delay in hooks.attempt_deliveries(runtime, delivery_ids).items():
            deliver.schedule((delivery_id,), delay=delay)

    def enqueue_deliveries(ids: list[int]) -> None:
        for start in range(0, len(ids), DELIVERY_BATCH):
            deliver_batch(ids[start : start + DELIVERY_BATCH])

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

    def poll_on_beat(watch_id: int) -> None:
        """Poll the watch at its phase of each interval in the coming minute."""
        phase = poll_phase(watch_id, interval)
        for offset in offsets:
            poll_watch.schedule((watch_id,), delay=offset + phase)

    def poll_soon(watch_id: int) -> None:
        """A new hook's watch: seed it now, then keep its beat until `schedule_polls` takes over."""
        poll_watch(watch_id)
        poll_on_beat(watch_id)

    @huey.periodic_task(crontab(minute="*"), name="schedule_polls")  # type: ignore[untyped-decorator]
    def schedule_polls() -> None:
        for watch_id in watched(runtime):
            poll_on_beat(watch_id)

    @huey.periodic_task(crontab(minute="*"), name="sweep_deliveries")  # type: ignore[untyped-decorator]
    def sweep_deliveries() -> None:
        with runtime.sessions() as session:
            due = hooks.due_deliveries(session)
        if due:
            log.info("hooks.sweep requeued=%d", len(due))
        enqueue_deliveries(due)

    return {
        "deliver": deliver,
        "deliver_batch": deliver_batch,
        "enqueue_deliveries": enqueue_deliveries,
        "poll_watch": poll_watch,
        "poll_soon": poll_soon,
        "schedule_polls": schedule_polls,
        "sweep_deliveries": sweep_deliveries,
    }
