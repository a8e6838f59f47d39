"""One action call as a request makes it: at once, within the deadline, or as a job answering
a callback, with Idempotency-Key replays. No Flask here: the view hands in what it parsed.

The first request with a key claims it; retries of it get the stored answer (a deadline 504
gives way to its job's outcome once the job finished). A transient failure (429, 5xx, a
timeout) releases the claim so the platform's retry runs the action again; a final answer, or a
run past its deadline whose job the retries then follow, is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.connections.service import Credential
from bridge.infra import netguard
from bridge.infra.errors import InvalidInput, NotFound, as_bridge_error
from bridge.operation import Action
from bridge.runs import jobs
from bridge.runs.idempotency import IdempotencyStore, StoredResponse, request_hash
from bridge.runs.runner import ActionRunner

TRANSIENT = (429, 500, 502, 503, 504)
IDEMPOTENCY_GRACE_S = 5  # a retry waits this much longer than the first run's deadline


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    replayed: bool = False


def answer(
    runner: ActionRunner, start_job: Callable[[str], None], action: Action, caller: Credential,
    payload: dict[str, Any], idempotency_key: str | None,
) -> Answer:  # fmt: skip
    """Validate `payload` and run the action, or replay the stored answer for this key.

    Raises:
        BridgeError: any of the action's failures, as the caller should see them.
        marshmallow.ValidationError: the payload does not fit the action's input.
    """
    data = action.load(payload)
    if not idempotency_key:
        return _run(runner, start_job, action, caller, data)
    key = idempotency_key.strip()
    runtime = runner.runtime
    store = IdempotencyStore(runtime.sessions, caller.id)
    wait_s = runtime.settings.action_deadline_s + IDEMPOTENCY_GRACE_S
    stored = store.claim(key, request_hash(action.key, payload), wait_s)
    if stored is not None:
        return _replayed(runner, stored, caller.id)
    try:
        result = _run(runner, start_job, action, caller, data)
    except Exception as exc:
        failure = as_bridge_error(exc)
        transient = failure.status_code in TRANSIENT or failure.status_code >= 500
        if transient and failure.code != jobs.DEADLINE_CODE:
            store.release(key)
        else:  # a final answer, or a run past its deadline whose job the retries follow
            store.complete(key, failure.status_code, failure.body())
        raise
    store.complete(key, result.status, result.body)
    return result


def _run(
    runner: ActionRunner, start_job: Callable[[str], None], action: Action, caller: Credential,
    data: dict[str, Any],
) -> Answer:  # fmt: skip
    callback_url = data.pop("callback_url", None)
    if callback_url:
        return Answer(202, _queue(runner, start_job, action, caller, data, callback_url))
    if not action.long_running:
        return Answer(200, runner.execute(action, caller, data))
    return Answer(200, runner.within_deadline(action, caller, data))


def _queue(
    runner: ActionRunner, start_job: Callable[[str], None], action: Action, caller: Credential,
    data: dict[str, Any], url: str,
) -> dict[str, Any]:  # fmt: skip
    """Store the job and hand it to the worker; the result goes to `url`, signed."""
    try:
        netguard.validate_target(url, runner.runtime.settings.allow_private_targets)
    except netguard.UnsafeTarget as exc:
        raise InvalidInput(f"callback_url: {exc}", fields=["callback_url"]) from exc
    job_id = jobs.new_job_id()
    with runner.runtime.sessions() as session:
        jobs.create(session, job_id, caller.id, action.key, data, url, "pending")
        session.commit()
    start_job(job_id)
    return {"job_id": job_id, "status": "pending", "status_url": jobs.status_path(job_id)}


def _replayed(runner: ActionRunner, stored: StoredResponse, connection_id: str) -> Answer:
    """The stored answer; a deadline 504 gives way to its job's outcome once the job finished."""
    error = stored.body.get("error") if isinstance(stored.body, dict) else None
    if isinstance(error, dict) and error.get("code") == jobs.DEADLINE_CODE:
        with runner.runtime.sessions() as session:
            try:
                job = jobs.find(session, str(error.get("job_id")), connection_id)
            except NotFound:
                job = None
            finished = jobs.outcome(job) if job is not None else None
        if finished is not None:
            return Answer(*finished, replayed=True)
    return Answer(stored.status, stored.body, replayed=True)
