"""The hooks feature's background work: poll watched agents, deliver events, recover lost work.

`schedule_polls` runs every minute and queues each watched agent's `poll_watch` on its beats
of the coming minute (Huey's periodic tasks are minute-grained): times of the clock, one per
poll interval at the watch's own phase, so watches do not all poll at once and every process
schedules the same times. A watch's first hook polls it at once and queues its beats
(`poll_soon`), so it is not left unpolled until the next minute; more hooks on it add nothing.
The watch lease turns duplicates (several workers, overlapping windows) into no-ops.
`deliver_batch` makes the first attempts of a fan-out together and `deliver` each retry;
`sweep_deliveries` re-enqueues due deliveries whose task was lost (a killed worker, a flushed
Redis) four times a minute, so they wait for the lease (30 s) and at most 15 s more. A worker
told to stop hands its batch or poll back at once: what it did not send is queued again
unleased, and a task the stop timeout cuts short frees its leases as it is handed back, so a
restarted worker goes on without waiting for a lease to expire.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from huey import Huey, crontab
from huey.signals import SIGNAL_INTERRUPTED

from bridge.connections.key_health import KeyOnHold
from bridge.connections.service import ConnectionRevoked
from bridge.hooks import deliveries, detection
from bridge.hooks.subscriptions import NewSubscription
from bridge.runtime import Runtime
from bridge.upstream.errors import UpstreamError

log = logging.getLogger(__name__)
GOLDEN_RATIO_FRACTION = 0.6180339887498949
# Each `schedule_polls` queues this far ahead: its minute, plus a second of overlap with the
# next run, so a run Huey starts a little late leaves no beat out (a repeated one is a no-op).
SCHEDULE_AHEAD_S = 61.0
# A beat skips its read when the agent was read within this share of the interval: the same
# beat queued twice (several workers, overlapping windows) or a person's poll just before.
# Half, not more: a beat that ran late (a busy queue) must not make the next, on-time one skip.
BEAT_SHARE = 0.5
DELIVERY_BATCH = 25  # deliveries per task: a fan-out to 100 hooks is 4 tasks, not 100
SWEEPS_PER_MINUTE = 4  # each an indexed read; a duplicate (several workers) claims nothing


def poll_phase(watch_id: int, interval: float) -> float:
    """Seconds into each interval at which this watch is polled.

    Spread over the interval (a golden-ratio sequence over watch ids) so that watches do not all
    poll, and fan out to their hooks, at the same instant: 10 agents with 100 hooks each would
    otherwise send 2,000 deliveries in one burst every interval and the last ones would wait.
    """
    return (watch_id * GOLDEN_RATIO_FRACTION) % 1.0 * interval


class HookTasks:
    """Registers the tasks on the app's queue; `deliver` and `poll_soon` enqueue."""

    def __init__(self, huey: Huey, runtime: Runtime) -> None:
        interval = runtime.settings.poll_interval_s

        @huey.task(name="deliver")  # type: ignore[untyped-decorator]  # huey is untyped
        def deliver(delivery_id: int) -> None:
            """One delivery's retry (or a single new one)."""
            deliver_batch.call_local([delivery_id])  # here, not one more trip through the queue

        @huey.task(name="deliver_batch")  # type: ignore[untyped-decorator]  # huey is untyped
        def deliver_batch(delivery_ids: list[int]) -> None:
            """First attempts of a fan-out; each delivery that must retry is scheduled alone,
            those a stopping worker did not send go back to the queue together, due now."""
            attempts = deliveries.attempt_batch(runtime, delivery_ids)
            for delivery_id, delay in attempts.retry.items():
                deliver.schedule((delivery_id,), delay=delay)
            if attempts.handed_back:
                deliver_batch(attempts.handed_back)

        @huey.task(name="poll_watch")  # type: ignore[untyped-decorator]  # huey is untyped
        def poll_watch(watch_id: int) -> None:
            watch = detection.find_watch(runtime, watch_id)
            if watch is None or not detection.is_watched(runtime, watch_id):
                return  # no active hook wants it any more (agent gone, disabled, deleted)
            try:
                result = detection.refresh_watch(runtime, watch, max_age_s=interval * BEAT_SHARE)
            except KeyOnHold:
                return  # recorded on the watch; logged when the key was rejected
            except (UpstreamError, ConnectionRevoked) as exc:
                log.warning(
                    "detection.failed agent=%s error=%s", watch.agent_id, type(exc).__name__
                )
                return
            if result.handed_back:  # the worker is stopping: the next one polls at once
                poll_watch(watch_id)
                return
            self.deliver(result.delivery_ids)

        @huey.signal(SIGNAL_INTERRUPTED)  # type: ignore[untyped-decorator]  # huey is untyped
        def hand_back(_signal: str, task: Any) -> None:
            """A batch or poll still running when its worker's stop timeout ran out dies with
            the process (the consumer queues it again): free its leases now, so the restarted
            worker's run of it is not turned away for `LEASE`."""
            name, args = getattr(task, "name", None), getattr(task, "args", None)
            if not args:
                return
            if name == "deliver_batch":
                deliveries.release(runtime, [int(i) for i in args[0]])
            elif name == "deliver":
                deliveries.release(runtime, [int(args[0])])
            elif name == "poll_watch":
                detection.release_for_restart(runtime, int(args[0]))

        def poll_on_beat(watch_id: int) -> None:
            """Queue the watch's polls of the coming `SCHEDULE_AHEAD_S`."""
            now = time.time()
            phase = poll_phase(watch_id, interval)
            for beat in beats(now, now + SCHEDULE_AHEAD_S, interval, phase):
                poll_watch.schedule((watch_id,), eta=datetime.fromtimestamp(beat, UTC))

        @huey.periodic_task(crontab(minute="*"), name="schedule_polls")  # type: ignore[untyped-decorator]
        def schedule_polls() -> None:
            for watch_id in detection.watched(runtime):
                poll_on_beat(watch_id)

        @huey.task(name="sweep_deliveries_once")  # type: ignore[untyped-decorator]  # huey is untyped
        def sweep_once() -> None:
            due = deliveries.due(runtime)
            if due:
                log.info("hooks.sweep requeued=%d", len(due))
            self.deliver(due)

        @huey.periodic_task(crontab(minute="*"), name="sweep_deliveries")  # type: ignore[untyped-decorator]
        def sweep_deliveries() -> None:
            """Sweep now and queue the minute's other sweeps (Huey's periodic tasks are
            minute-grained)."""
            for k in range(1, SWEEPS_PER_MINUTE):  # first: a failed sweep now skips none
                sweep_once.schedule(delay=60.0 * k / SWEEPS_PER_MINUTE)
            sweep_once.call_local()

        self._deliver_batch = deliver_batch
        self._poll_on_beat = poll_on_beat
        self.deliver_one = deliver
        self.poll_watch = poll_watch
        self.schedule_polls = schedule_polls
        self.sweep_deliveries = sweep_deliveries
        self.sweep_once = sweep_once

    def deliver(self, delivery_ids: list[int]) -> None:
        """Enqueue first attempts, `DELIVERY_BATCH` deliveries per task."""
        for start in range(0, len(delivery_ids), DELIVERY_BATCH):
            self._deliver_batch(delivery_ids[start : start + DELIVERY_BATCH])

    def poll_soon(self, created: NewSubscription) -> None:
        """A watch's first hook: seed it now, then keep its beat until `schedule_polls` takes
        over. A watch that already had a hook is on its beat: one more hook adds no poll (1,000
        hooks subscribed at once would otherwise queue 1,000 polls and 4,000 beats)."""
        if not created.first_on_watch:
            return
        self.poll_watch(created.watch_id)
        self._poll_on_beat(created.watch_id)


def beats(after: float, until: float, interval: float, phase: float) -> list[float]:
    """A watch's poll times in (`after`, `until`]: UNIX times `phase` seconds into each
    `interval` (at most one a second) counted from the epoch, so every process (a new hook's
    web process, each worker's `schedule_polls`, which Huey runs every 60 s from the consumer's
    start, not on the minute) schedules the same beat and overlapping windows repeat a poll
    time (a no-op: the watch's lease) instead of shifting it."""
    step = max(interval, 1.0)
    first = math.floor((after - phase) / step) + 1
    times = [phase + step * k for k in range(first, math.floor((until - phase) / step) + 1)]
    return [t for t in times if after < t <= until]
