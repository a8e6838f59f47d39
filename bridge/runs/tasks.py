"""Worker tasks for jobs with a callback: run the action, then POST the signed result.

A callback is retried on the configured schedule after timeouts, connection failures, 5xx and
429 (its Retry-After is honoured when longer); 410 Gone stops at once; other 4xx are final.
Each attempt is counted on the job row; `webhook-id` stays the job id on every attempt, so the
receiver can drop duplicates.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from huey import Huey
from huey.exceptions import RetryTask

from bridge.connections import service as connections
from bridge.connections.service import ConnectionRevoked
from bridge.infra.models import Connection, Job
from bridge.infra.outbound import Attempt
from bridge.operation import Action
from bridge.runs import jobs
from bridge.runtime import Runtime

log = logging.getLogger(__name__)


def register(huey: Huey, runtime: Runtime, actions: tuple[Action, ...]) -> dict[str, Any]:
    by_key = {action.key: action for action in actions}

    @huey.task(name="run_job")  # type: ignore[untyped-decorator]  # huey is untyped
    def run_job(job_id: str) -> None:
        with runtime.sessions() as session:
            job = session.get(Job, job_id)
            if job is None or job.state not in ("pending", "running"):
                return
            job.state = "running"
            session.commit()
            connection_id, action_key = job.connection_id, job.action
            data = json.loads(job.input_json)
        try:
            result = jobs.execute(runtime, by_key[action_key], connection_id, data)
        except Exception as exc:
            jobs.finish(runtime, job_id, error=exc)
        else:
            jobs.finish(runtime, job_id, result=result)
        deliver_callback(job_id)

    @huey.task(name="deliver_callback")  # type: ignore[untyped-decorator]  # huey is untyped
    def deliver_callback(job_id: str) -> None:
        with runtime.sessions() as session:
            job = session.get(Job, job_id)
            if job is None or not job.callback_url or job.callback_state != "pending":
                return
            connection = session.get(Connection, job.connection_id)
            if connection is None or connection.is_revoked:
                job.callback_state = "cancelled"
                session.commit()
                return
            try:
                secret = connections.signing_secret(connection, runtime.box)
            except ConnectionRevoked:
                return
            attempt = runtime.deliverer.post(job.callback_url, job.id, _payload(job), secret)
            job.callback_attempts += 1
            job.callback_last_status = attempt.status or None
            delay = _next_delay(runtime, job.callback_attempts, attempt)
            job.callback_state = _state_after(attempt, delay)
            session.commit()
            log.info(
                "jobs.callback job=%s attempt=%d status=%s error=%s",
                job_id, job.callback_attempts, attempt.status, attempt.error,
            )  # fmt: skip
        if job.callback_state == "pending" and delay is not None:
            raise RetryTask(delay=delay)

    return {"run_job": run_job, "deliver_callback": deliver_callback}


def _payload(job: Job) -> dict[str, Any]:
    """The job as called back: without the delivery bookkeeping, so every attempt is the same."""
    return {name: value for name, value in jobs.view(job).items() if name != "callback"}


def _next_delay(runtime: Runtime, attempts: int, attempt: Attempt) -> float | None:
    """Seconds until the next try, or None when this outcome is final."""
    retryable = attempt.status == 0 or attempt.status >= 500 or attempt.status == 429
    schedule = runtime.settings.callback_retry_delays
    if attempt.ok or not retryable or attempts > len(schedule):
        return None
    return max(schedule[attempts - 1], attempt.retry_after or 0)


def _state_after(attempt: Attempt, delay: float | None) -> str:
    if attempt.ok:
        return "delivered"
    if attempt.status == 410:
        return "gone"
    return "pending" if delay is not None else "failed"
