"""Jobs: actions that may outlive a platform's time limit, and every SQL statement about them.

Two paths share one table. With `callback_url`, the request answers 202 at once and the worker
runs the action, then POSTs the signed result to the callback (retried on a schedule). Without
it, the request runs the action in a thread and waits up to the deadline; past it, the request
answers 504 with a job id, the run carries on, and its result lands in the same table
(`GET /v1/jobs/<id>`). The job row is only written when needed, so the common fast path costs
no extra database writes. A queued job still running when its worker's stop timeout ran out is
run again by the next worker, which may ask ZappWay a second time: the job counts its runs and
shows `runs` (2 or more) in its status and callback, so the repeat is never silent. Finished
jobs are purged after BRIDGE_JOB_RETENTION_DAYS, except while their callback is still being
retried.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, or_
from sqlalchemy.orm import Session

from bridge.infra.errors import BridgeError, NotFound, as_bridge_error
from bridge.infra.models import Job
from bridge.infra.storage import purge_before
from bridge.runtime import Runtime

log = logging.getLogger(__name__)
DEADLINE_CODE = "action_timeout"
FINISHED = ("succeeded", "failed")


class ActionStillRunning(BridgeError):
    """Raised when a synchronous run passes its deadline; the result will land in the job."""

    status_code = 504
    code = DEADLINE_CODE

    def __init__(self, job_id: str) -> None:
        super().__init__(f"ZappWay is still answering; fetch the result from /v1/jobs/{job_id}")
        self.job_id = job_id

    def details(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "status_url": status_path(self.job_id)}


@dataclass(frozen=True)
class PendingRun:
    """What a worker needs to run a queued job."""

    job_id: str
    connection_id: str
    action: str
    data: dict[str, Any]


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def status_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


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


def find(session: Session, job_id: str, connection_id: str) -> Job:
    """The connection's job.

    Raises:
        NotFound: when there is none (another connection's included).
    """
    job = session.get(Job, job_id)
    if job is None or job.connection_id != connection_id:
        raise NotFound("No such job for this connection")
    return job


def start(runtime: Runtime, job_id: str) -> PendingRun | None:
    """Mark a queued job running; None when it is gone or already finished."""
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
        if job is None or job.state not in ("pending", "running"):
            return None
        job.state = "running"
        job.runs = (job.runs or 0) + 1  # a second run: a stopping worker handed this one back
        session.commit()
        return PendingRun(job.id, job.connection_id, job.action, json.loads(job.input_json))


def finish(
    runtime: Runtime, job_id: str, result: Any = None, error: BaseException | None = None
) -> None:
    """Store a job's outcome: the dumped result, or the error as clients would have seen it."""
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        if error is None:
            job.state, job.result_json = "succeeded", json.dumps(result, default=str)
        else:
            if not isinstance(error, BridgeError):
                log.error("jobs.unhandled_error job=%s type=%s", job_id, type(error).__name__,
                          exc_info=error)  # fmt: skip
            failure = as_bridge_error(error)
            job.state = "failed"
            job.error_json = json.dumps({**failure.body()["error"], "status": failure.status_code})
        job.finished_at = datetime.now(UTC)
        session.commit()


def view(job: Job) -> dict[str, Any]:
    """The job as `GET /v1/jobs/<id>` and callbacks show it."""
    body: dict[str, Any] = {"job_id": job.id, "action": job.action, "status": job.state}
    if job.result_json is not None:
        body["result"] = json.loads(job.result_json)
    if job.error_json is not None:
        body["error"] = json.loads(job.error_json)
    if (job.runs or 0) > 1:  # ran again after a stop: ZappWay may have been asked more than once
        body["runs"] = job.runs
    if job.callback_url:
        body["callback"] = {"state": job.callback_state, "attempts": job.callback_attempts}
    return body


def outcome(job: Job) -> tuple[int, Any] | None:
    """A finished job as the answer its request would have had: (status, body); None while it
    runs."""
    if job.state not in FINISHED:
        return None
    shown = view(job)
    if job.state == "succeeded":
        return 200, shown.get("result")
    failure = dict(shown.get("error") or {})
    return int(failure.pop("status", 502)), {"error": failure}


def purge_finished(runtime: Runtime) -> int:
    """Delete finished jobs past their retention whose callback is not still being retried."""
    jobs = cast(Table, Job.__table__)
    before = datetime.now(UTC) - timedelta(days=runtime.settings.job_retention_days)
    callback_done = or_(jobs.c.callback_state.is_(None), jobs.c.callback_state != "pending")
    return purge_before(runtime.engine, jobs.c.finished_at, before, only=callback_done)
