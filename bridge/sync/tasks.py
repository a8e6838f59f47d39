"""Worker tasks for inbound CMS sync: drain one connection, and a sweep for anything missed.

`sync_connection` is scheduled by the first accepted webhook after a quiet period (debounce) and
reschedules itself while work remains or the key's budget asks it to wait. `sweep_syncs` runs
every minute and restarts connections whose due documents have no task (a killed worker).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from huey import Huey, crontab
from sqlalchemy import select, update

from bridge.infra.models import Connection, PendingDocument
from bridge.runtime import Runtime
from bridge.sync import drain as syncer
from bridge.sync import state as sync_state

log = logging.getLogger(__name__)


def register(huey: Huey, runtime: Runtime) -> dict[str, Any]:
    @huey.task(name="sync_connection")  # type: ignore[untyped-decorator]  # huey is untyped
    def sync_connection(connection_id: str) -> None:
        """Drain one connection; it holds the connection's sync marker while it runs."""
        outcome = syncer.sync(runtime, connection_id)
        log.info(
            "sync.run connection=%s delivered=%d failed=%d again_in=%s",
            connection_id, outcome.delivered, outcome.failed, outcome.come_back_in,
        )  # fmt: skip
        if outcome.come_back_in is not None:
            delay = outcome.come_back_in
            with runtime.sessions() as session:
                session.execute(
                    update(Connection)
                    .where(Connection.id == connection_id)
                    .values(sync_due_at=datetime.now(UTC) + timedelta(seconds=delay))
                )
                session.commit()
            sync_connection.schedule((connection_id,), delay=delay)

    @huey.periodic_task(crontab(minute="*"), name="sweep_syncs")  # type: ignore[untyped-decorator]
    def sweep_syncs() -> None:
        now = datetime.now(UTC)
        stale_after = timedelta(seconds=runtime.settings.sync_stale_after_s)
        with runtime.sessions() as session:
            due = session.scalars(
                select(PendingDocument.connection_id)
                .where(PendingDocument.state == "pending")
                .where(PendingDocument.next_attempt_at <= now)
                .distinct()
            ).all()
        for connection_id in due:
            with runtime.sessions() as session:
                claimed = syncer.claim_sync(session, connection_id, 0, stale_after)
                session.commit()
            if claimed:
                sync_state.release_leases(runtime, connection_id)  # left by a killed worker, if any
                sync_connection(connection_id)

    def schedule_sync(connection_id: str, delay: float) -> None:
        """Enqueue the task a webhook's `claim_sync` reserved (after its commit)."""
        sync_connection.schedule((connection_id,), delay=delay)

    return {"sync_connection": sync_connection, "sweep_syncs": sweep_syncs,
            "schedule_sync": schedule_sync}  # fmt: skip
