"""The runs feature's background work: queued jobs, their callbacks, and its upkeep."""

from __future__ import annotations

import logging

from huey import Huey, crontab
from huey.exceptions import RetryTask

from bridge.connections import service as connections
from bridge.infra.storage import session_scope
from bridge.operation import Action
from bridge.runs import callbacks, idempotency, jobs
from bridge.runs.runner import ActionRunner

log = logging.getLogger(__name__)


class RunTasks:
    """Registers the tasks on the app's queue; `start_job` enqueues one."""

    def __init__(self, huey: Huey, runner: ActionRunner, actions: tuple[Action, ...]) -> None:
        runtime = runner.runtime
        by_key = {action.key: action for action in actions}

        @huey.task(name="run_job")  # type: ignore[untyped-decorator]  # huey is untyped
        def run_job(job_id: str) -> None:
            pending = jobs.start(runtime, job_id)
            if pending is None:
                return
            try:
                caller = connections.credential(runtime, pending.connection_id)
                result = runner.execute(by_key[pending.action], caller, pending.data)
            except Exception as exc:
                jobs.finish(runtime, job_id, error=exc)
            else:
                jobs.finish(runtime, job_id, result=result)
            deliver_callback(job_id)

        @huey.task(name="deliver_callback")  # type: ignore[untyped-decorator]  # huey is untyped
        def deliver_callback(job_id: str) -> None:
            delay = callbacks.deliver(runtime, job_id)
            if delay is not None:
                raise RetryTask(delay=delay)

        every = crontab(minute=f"*/{runtime.settings.housekeeping_minutes}")

        @huey.periodic_task(every, name="runs_housekeeping")  # type: ignore[untyped-decorator]  # huey is untyped
        def housekeeping() -> None:
            """Expired idempotency records, and finished jobs past their retention."""
            with session_scope(runtime.sessions) as session:
                expired = idempotency.purge_expired(session)
            finished = jobs.purge_finished(runtime)
            if expired or finished:
                log.info("housekeeping.runs idempotency=%d jobs=%d", expired, finished)

        self.run_job = run_job
        self.deliver_callback = deliver_callback
        self.housekeeping = housekeeping

    def start_job(self, job_id: str) -> None:
        """Run a stored job in the worker (its result then goes to the callback)."""
        self.run_job(job_id)
