"""The console's background work: its activity records past their retention."""

from __future__ import annotations

import logging

from huey import Huey, crontab

from bridge.console import activity
from bridge.runtime import Runtime

log = logging.getLogger(__name__)


class ConsoleTasks:
    """Registers the upkeep on the app's queue."""

    def __init__(self, huey: Huey, runtime: Runtime) -> None:
        every = crontab(minute=f"*/{runtime.settings.housekeeping_minutes}")

        @huey.periodic_task(every, name="console_housekeeping")  # type: ignore[untyped-decorator]  # huey is untyped
        def housekeeping() -> None:
            """Request records older than BRIDGE_ACTIVITY_RETENTION_DAYS."""
            retention = runtime.settings.activity_retention_days
            purged = activity.purge_old(runtime.engine, retention)
            if purged:
                log.info("housekeeping.activity purged=%d", purged)

        self.housekeeping = housekeeping
