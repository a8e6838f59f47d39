"""Running an action: its context, the one place `perform` is called, and the deadline.

`ActionRunner.execute` opens the connection's ZappWay operations and documents (re-reading the
connection, so revocation applies at once), calls the action's `perform` and dumps its output.
`within_deadline` runs a long action in a per-process thread pool and stops waiting at
BRIDGE_ACTION_DEADLINE: the run carries on, its result lands in a job row, and the caller gets
`ActionStillRunning` (504 with the job id).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from bridge.connections import service as connections
from bridge.connections.service import Credential
from bridge.documents.service import DocumentService
from bridge.documents.store import DocumentMap
from bridge.operation import Action, ActionContext
from bridge.runs import jobs
from bridge.runtime import Runtime

log = logging.getLogger(__name__)


class ActionRunner:
    """Runs actions for connections; one per process (its thread pool serves the deadline)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pool = ThreadPoolExecutor(
            max_workers=runtime.settings.action_threads, thread_name_prefix="action"
        )

    def context(self, caller: Credential) -> ActionContext:
        """What `perform` may use for this connection (no database read: the caller's
        credential was read when it authenticated)."""
        zappway = connections.zappway_for(self.runtime, caller)
        documents = DocumentService(zappway, DocumentMap(self.runtime.sessions, caller.id))
        return ActionContext(zappway=zappway, connection_id=caller.id, documents=documents)

    def execute(self, action: Action, caller: Credential, data: dict[str, Any]) -> Any:
        """Run an action's perform and dump its output (the one place actions are executed)."""
        return action.dump(action.perform(self.context(caller), data))

    def within_deadline(self, action: Action, caller: Credential, data: dict[str, Any]) -> Any:
        """Return the action's output, or hand the run to a job once the deadline passes.

        Raises:
            ActionStillRunning: the deadline passed; the job will hold the result.
        """
        run = _Run(jobs.new_job_id())
        future = self._pool.submit(self._detachable, run, action, caller, data)
        try:
            return future.result(timeout=self.runtime.settings.action_deadline_s)
        except FutureTimeout:
            with run.lock:
                if not future.done():
                    run.detached = True
                    with self.runtime.sessions() as session:
                        jobs.create(
                            session, run.job_id, caller.id, action.key, data, None, "running"
                        )
                        session.commit()
            if run.detached:
                log.info("jobs.detached job=%s action=%s", run.job_id, action.key)
                raise jobs.ActionStillRunning(run.job_id) from None
            return future.result()

    def _detachable(
        self, run: _Run, action: Action, caller: Credential, data: dict[str, Any]
    ) -> Any:
        try:
            result = self.execute(action, caller, data)
        except Exception as exc:
            with run.lock:
                if run.detached:
                    jobs.finish(self.runtime, run.job_id, error=exc)
            raise
        with run.lock:
            if run.detached:
                jobs.finish(self.runtime, run.job_id, result=result)
        return result

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Run:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.lock = threading.Lock()
        self.detached = False
