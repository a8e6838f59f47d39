"""Posting a job's result to its callback URL, signed, retried on the callback schedule.

A callback is retried after timeouts, connection failures, 5xx and 429 (its Retry-After is
honoured when longer); 410 Gone stops at once; other 4xx are final. Each attempt is counted on
the job row; `webhook-id` stays the job id on every attempt, so the receiver can drop
duplicates.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from bridge.connections import service as connections
from bridge.infra.backoff import Backoff
from bridge.infra.models import Connection, Job
from bridge.infra.outbound import PostOutcome
from bridge.runs import jobs
from bridge.runtime import Runtime

log = logging.getLogger(__name__)


def backoff(runtime: Runtime) -> Backoff:
    """The callback schedule (`Settings.callback_retry_delays`); a receiver's Retry-After, however
    long, is a floor."""
    return Backoff(schedule=runtime.settings.callback_retry_delays, max_retry_after=math.inf)


def deliver(runtime: Runtime, job_id: str) -> float | None:
    """Make one callback attempt if one is owed; seconds until the next, or None when done."""
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
        if job is None or not job.callback_url or job.callback_state != "pending":
            return None
        connection = session.get(Connection, job.connection_id)
        if connection is None or connection.is_revoked:
            job.callback_state = "cancelled"
            session.commit()
            return None
        try:
            secret = connections.signing_secret(connection, runtime.box)
        except connections.ConnectionRevoked:
            return None
        sent = runtime.outbound.post(job.callback_url, job.id, _payload(job), secret)
        job.callback_attempts += 1
        job.callback_last_status = sent.status or None
        delay = _next_delay(runtime, job.callback_attempts, sent)
        job.callback_state = _state_after(sent, delay)
        session.commit()
        log.info(
            "jobs.callback job=%s attempt=%d status=%s error=%s",
            job_id, job.callback_attempts, sent.status, sent.error,
        )  # fmt: skip
        return delay if job.callback_state == "pending" else None


def _payload(job: Job) -> dict[str, Any]:
    """The job as called back: without the delivery bookkeeping, so every attempt is the same."""
    return {name: value for name, value in jobs.view(job).items() if name != "callback"}


def _next_delay(runtime: Runtime, attempts: int, sent: PostOutcome) -> float | None:
    """Seconds until the next try, or None when this outcome is final."""
    retryable = sent.status == 0 or sent.status >= 500 or sent.status == 429
    if sent.ok or not retryable:
        return None
    return backoff(runtime).delay(attempts - 1, sent.retry_after, factor=1.0)


def _state_after(sent: PostOutcome, delay: float | None) -> str:
    if sent.ok:
        return "delivered"
    if sent.status == 410:
        return "gone"
    return "pending" if delay is not None else "failed"
