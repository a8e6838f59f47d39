"""Jobs: actions that may outlive a platform's time limit.

Two paths share one table. With `callback_url`, the request answers 202 at once and the worker
runs the action, then POSTs the signed result to the callback (retried on a schedule). Without
it, the request runs the action in a thread and waits up to the deadline; past it, the request
answers 504 with a job id, the run carries on, and its result lands in the same table
(`GET /v1/jobs/<id>`). The job row is only written when needed, so the common fast path costs
no extra database writes.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from bridge.infra.models import Job
from bridge.operation import Action
from bridge.runtime import Runtime
from bridge.web.errors import translate

log = logging.getLogger(__name__)


class JobStillRunning(Exception):
    """Raised when a synchronous run passes its deadline; the result will land in the job."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def execute(runtime: Runtime, action: Action, connection_id: str, data: dict[str, Any]) -> Any:
    """Run an action's perform and dump its output (the one place actions are executed)."""
    with runtime.action_context(connection_id) as ctx:
        return action.dump(action.perform(ctx, data))


def create(
    session: Session, job_id: str, connection_id: str, action: str, data: dict[str, Any],
    callback_url: str | None, state: str,
) -> Job:  # fmt: skip
    job = Job(
        id=job_id,
        connection_id=connection_id,
        action=action,
        state=state,
        input_json=json.dumps(data, default=str),
        callback_url=callback_url,
        callback_state="pending" if callback_url else None,
        callback_attempts=0,
    )
    session.add(job)
    return job


def finish(
    runtime: Runtime, job_id: str, result: Any = None, error: Exception | None = None
) -> None:
    """Store a job's outcome: the dumped result, or the error as clients would have seen it."""
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        if error is None:
            job.state, job.result_json = "succeeded", json.dumps(result, default=str)
        else:
            info = translate(error)
            job.state = "failed"
            job.error_json = json.dumps({**info.body()["error"], "status": info.status})
        job.finished_at = datetime.now(UTC)
        session.commit()


def view(job: Job) -> dict[str, Any]:
    """The job as `GET /v1/jobs/<id>` and callbacks show it."""
    body: dict[str, Any] = {"job_id": job.id, "action": job.action, "status": job.state}
    if job.result_json is not None:
        body["result"] = json.loads(job.result_json)
    if job.error_json is not None:
        body["error"] = json.loads(job.error_json)
    if job.callback_url:
        body["callback"] = {"state": job.callback_state, "attempts": job.callback_attempts}
    return body


class DeadlineRunner:
    """Runs long actions in a per-process thread pool and gives up waiting at the deadline."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._pool = ThreadPoolExecutor(
            max_workers=runtime.settings.action_threads, thread_name_prefix="action"
        )

    def run(self, action: Action, connection_id: str, data: dict[str, Any]) -> Any:
        """Return the action's output, or raise JobStillRunning once the deadline passes."""
        run = _Run(new_job_id())
        future = self._pool.submit(self._execute, run, action, connection_id, data)
        try:
            return future.result(timeout=self._runtime.settings.action_deadline_s)
        except FutureTimeout:
            with run.lock:
                if not future.done():
                    run.detached = True
                    with self._runtime.sessions() as session:
                        create(
                            session, run.job_id, connection_id, action.key, data, None, "running"
                        )
                        session.commit()
            if run.detached:
                log.info("jobs.detached job=%s action=%s", run.job_id, action.key)
                raise JobStillRunning(run.job_id) from None
            return future.result()

    def _execute(self, run: _Run, action: Action, connection_id: str, data: dict[str, Any]) -> Any:
        try:
            result = execute(self._runtime, action, connection_id, data)
        except Exception as exc:
            with run.lock:
                if run.detached:
                    finish(self._runtime, run.job_id, error=exc)
            raise
        with run.lock:
            if run.detached:
                finish(self._runtime, run.job_id, result=result)
        return result

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Run:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.lock = threading.Lock()
        self.detached = False
