"""The sync feature's background work: drain one connection, a sweep for anything missed, and
the upkeep of received events.

`sync_connection` is scheduled by the first accepted webhook after a quiet period (debounce) and
reschedules itself while work remains or the key's budget asks it to wait. `sweep_syncs` runs
every minute and restarts connections whose due documents have no live task (a killed worker).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from huey import Huey, crontab
from huey.signals import SIGNAL_INTERRUPTED

from bridge.runtime import Runtime
from bridge.sync import drain, inbound_events, marker
from bridge.sync import state as sync_state

log = logging.getLogger(__name__)


class SyncTasks:
    """Registers the tasks on the app's queue; `schedule` enqueues a connection's drain."""

    def __init__(self, huey: Huey, runtime: Runtime) -> None:
        @huey.task(name="sync_connection")  # type: ignore[untyped-decorator]  # huey is untyped
        def sync_connection(connection_id: str) -> None:
            """Drain one connection; it holds the connection's sync marker while it runs."""
            outcome = drain.sync(runtime, connection_id)
            log.info(
                "sync.run connection=%s delivered=%d failed=%d again_in=%s",
                connection_id, outcome.delivered, outcome.failed, outcome.come_back_in,
            )  # fmt: skip
            if outcome.come_back_in is not None:
                marker.reschedule(runtime, connection_id, outcome.come_back_in)
                sync_connection.schedule((connection_id,), delay=outcome.come_back_in)

        @huey.periodic_task(crontab(minute="*"), name="sweep_syncs")  # type: ignore[untyped-decorator]
        def sweep_syncs() -> None:
            stale_after = timedelta(seconds=runtime.settings.sync_stale_after_s)
            for connection_id in sync_state.connections_due(runtime):
                with runtime.sessions() as session:
                    claimed = marker.claim(session, connection_id, 0, stale_after)
                    session.commit()
                if claimed:
                    sync_connection(connection_id)

        every = crontab(minute=f"*/{runtime.settings.housekeeping_minutes}")

        @huey.periodic_task(every, name="sync_housekeeping")  # type: ignore[untyped-decorator]  # huey is untyped
        def housekeeping() -> None:
            """Received events past their retention (never an accepted delivery's key)."""
            purged = inbound_events.purge_old(runtime)
            if purged:
                log.info("housekeeping.inbound_events purged=%d", purged)

        @huey.signal(SIGNAL_INTERRUPTED)  # type: ignore[untyped-decorator]  # huey is untyped
        def hand_back(_signal: str, task: Any) -> None:
            """A drain still running when its worker's stop timeout ran out dies with the
            process: free its document leases so the drain queued again runs at once."""
            if getattr(task, "name", None) == "sync_connection" and task.args:
                sync_state.release_own_leases(runtime, str(task.args[0]))

        self.sync_connection = sync_connection
        self.sweep_syncs = sweep_syncs
        self.housekeeping = housekeeping

    def schedule(self, connection_id: str, delay: float) -> None:
        """Enqueue the drain a `marker.claim` reserved (after the claim's commit)."""
        self.sync_connection.schedule((connection_id,), delay=delay)
