"""Delivering logged events to REST hooks (Standard Webhooks, Svix-like retries).

A delivery is one event owed to one subscription. `attempt_deliveries` POSTs a batch under one
lease (so two workers never send a delivery at the same time; short, and renewed while the batch
runs, `bridge.infra.leases`, so a killed worker's batch is free within `LEASE`), records each
attempt as its answer arrives, and decides what comes next: done on 2xx; subscription deleted
on 410; otherwise the next slot of the hook schedule (`Backoff`, ±20 % jitter, at least the
receiver's Retry-After). A delivery that exhausts the schedule is marked failed and disables its
subscription. `webhook-id` is stable per (event, subscription); each attempt has a fresh
timestamp and signature. Delivery is at-least-once: a worker killed between the receiver's 2xx
and our record sends that event once more, with the same id.

A batch whose lease lapsed and was taken by another worker (this process stalled past its
renewals, or the database was away) starts no new POST of those deliveries
(`leases.HeldLeases.still_held`, checked as each POST starts): the other worker sends them. One
whose lease cannot be confirmed (the database away) is handed back like a stopping worker's.

A worker told to stop (`queue.stopping()`) starts no new POST: the ones in flight are answered
and recorded, the rest of the batch is released at once and handed back (`Attempts.handed_back`)
so a restarted worker sends it without waiting for the lease; `release` frees a batch the stop
timeout cut short.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from bridge.infra import leases, metrics, queue
from bridge.infra.backoff import Backoff
from bridge.infra.models import Delivery, DeliveryAttempt, Event, Subscription
from bridge.infra.outbound import PostOutcome
from bridge.runtime import Runtime

log = logging.getLogger(__name__)
LEASE = leases.LENGTH
JITTER = 0.2
POST_PARALLELISM = 10  # concurrent POSTs per batch of deliveries
RECORD_WINDOW_S = 0.05  # answers this close together are recorded in one commit
HELD = leases.HeldLeases(Delivery)  # this process's delivery leases: renewed, and `release`
OUTCOMES = {"delivered": "delivered", "cancelled": "gone", "failed": "failed"}  # else: retry


def message_id(delivery: Delivery) -> str:
    """The `webhook-id`: the same on every attempt and replay of this event to this hook."""
    return f"msg_{delivery.event_id}_{delivery.subscription_id}"


def backoff(runtime: Runtime) -> Backoff:
    """The hook schedule (`Settings.hook_retry_schedule`): a longer Retry-After than an hour is
    ignored in favour of the schedule."""
    return Backoff.fixed(runtime.settings.hook_retry_schedule, jitter=JITTER)


def attempt_delivery(runtime: Runtime, delivery_id: int) -> float | None:
    """Make one attempt if the delivery is due; return seconds until the next one, or None."""
    return attempt_deliveries(runtime, [delivery_id]).get(delivery_id)


def attempt_deliveries(runtime: Runtime, delivery_ids: Sequence[int]) -> dict[int, float]:
    """One attempt for each due delivery among `delivery_ids`; {id: seconds to its next attempt}
    for those to retry (those handed back unsent are due now: see `attempt_batch`)."""
    attempts = attempt_batch(runtime, delivery_ids)
    return {**attempts.retry, **dict.fromkeys(attempts.handed_back, 0.0)}


@dataclass
class Attempts:
    """What one batch leaves to do: retries by delay, and those it never sent because the
    worker is stopping or their lease could not be confirmed (unleased, due now: the caller
    queues them again at once, as one batch)."""

    retry: dict[int, float]
    handed_back: list[int]


def attempt_batch(runtime: Runtime, delivery_ids: Sequence[int]) -> Attempts:
    """One attempt for each due delivery among `delivery_ids`.

    Batched because fan-out is many deliveries at once (one conversation to 100 hooks): one
    claim and one read for the batch instead of per delivery, and the POSTs go out in parallel.
    Answers are recorded as they come, a commit per group that finished together, so a slow
    receiver delays its own record, not its neighbours' (a worker killed meanwhile re-sends
    only what was not recorded).
    """
    lease = _claim(runtime, delivery_ids)
    result = Attempts({}, [])
    if not lease.won:
        return result
    HELD.hold(runtime.sessions, lease.won, lease.token, lease.claimed)
    try:
        _attempt_leased(runtime, lease, result)
    finally:
        HELD.drop(lease.won, lease.token)
    if result.handed_back:
        log.info("hooks.handed_back deliveries=%d", len(result.handed_back))
    return result


def _attempt_leased(runtime: Runtime, lease: Lease, result: Attempts) -> None:
    """POST the leased deliveries and record each answer into `result` as it arrives."""
    with runtime.sessions() as session:
        rows = session.execute(
            select(Delivery, Subscription, Event)
            .outerjoin(Subscription, Subscription.id == Delivery.subscription_id)
            .outerjoin(Event, Event.id == Delivery.event_id)
            .where(Delivery.id.in_(lease.won))
        ).all()
        outbound = []
        for delivery, subscription, event in rows:
            if subscription is None or event is None or subscription.state != "active":
                delivery.state, delivery.lease_until, delivery.lease_token = "cancelled", None, None
            else:
                outbound.append((delivery, subscription, event))
        session.commit()  # no transaction stays open while receivers answer
        with closing(_post_as_answered(runtime, outbound)) as answers:  # cancels on error
            for finished in answers:
                held = _release_if_ours(
                    session, [delivery.id for delivery, _s, _a in finished], lease
                )
                for delivery, subscription, attempt in finished:
                    if delivery.id not in held:  # another worker took over: its record stands
                        log.warning("hooks.lease-lost delivery=%s status=%s", delivery.id,
                                    attempt.status)  # fmt: skip
                        continue
                    if attempt in UNSENT:  # stopping, or the lease lapsed: freed above if ours
                        result.handed_back.append(delivery.id)
                        continue
                    delay = _record(runtime, session, delivery, subscription, attempt)
                    if delay is not None:
                        result.retry[delivery.id] = delay
                session.commit()


def release(runtime: Runtime, delivery_ids: Sequence[int]) -> int:
    """Free the leases this process holds on a batch it abandons mid-POST (the stop timeout ran
    out); returns how many. The task is queued again, so a restarted worker re-sends them at
    once (same `webhook-id`) instead of after the lease: at-least-once, as after a kill. A
    delivery of the batch another worker leased is left to it."""
    freed = 0
    with runtime.sessions() as session:
        for delivery_id, token in HELD.held(delivery_ids).items():
            freed += session.execute(  # type: ignore[attr-defined]  # DML results have rowcount
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.lease_token == token)
                .values(lease_until=None, lease_token=None)
            ).rowcount
        session.commit()
    return freed


def _post_as_answered(
    runtime: Runtime, outbound: list[tuple[Delivery, Subscription, Event]]
) -> Generator[list[tuple[Delivery, Subscription, PostOutcome]], None, None]:
    """POST each (delivery, subscription, event), at most `POST_PARALLELISM` at a time; yield
    the attempts as they finish, grouped with those finishing within `RECORD_WINDOW_S` (one
    commit for a round of fast receivers instead of one per answer).

    The threads get plain values, never the ORM objects the caller's session keeps using. When
    the generator is closed early (the caller failed), POSTs not yet started are cancelled.
    """
    requests = [_Outgoing.of(delivery, subscription, event)
                for delivery, subscription, event in outbound]  # fmt: skip
    if len(outbound) <= 1:  # nothing to overlap: no pool
        for (delivery, subscription, _event), request in zip(outbound, requests, strict=True):
            yield [(delivery, subscription, _post(runtime, request))]
        return
    pool = ThreadPoolExecutor(min(len(outbound), POST_PARALLELISM), "hook-post")
    try:
        running = {
            pool.submit(_post, runtime, request): item
            for item, request in zip(outbound, requests, strict=True)
        }
        while running:
            first, _ = wait(running, return_when=FIRST_COMPLETED)
            rest, _ = wait(running.keys() - first, timeout=RECORD_WINDOW_S)
            finished = [(running.pop(future), future.result()) for future in first | rest]
            yield [(delivery, subscription, attempt)
                   for (delivery, subscription, _e), attempt in finished]  # fmt: skip
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class _Outgoing:
    """What one POST needs, read from the ORM objects before it leaves for a thread."""

    delivery_id: int
    lease_token: str
    target_url: str
    message_id: str
    payload_json: str
    secret_ciphertext: str

    @classmethod
    def of(cls, delivery: Delivery, subscription: Subscription, event: Event) -> _Outgoing:
        return cls(delivery.id, delivery.lease_token or "", subscription.target_url,
                   message_id(delivery), event.payload_json,
                   subscription.secret_ciphertext)  # fmt: skip


def _release_if_ours(session: Session, delivery_ids: list[int], lease: Lease) -> set[int]:
    """Release our lease on these deliveries; the ids whose lease was still ours.

    Compare-and-set on the lease's token: another worker's claim (once ours lapsed) marks the
    row with its own.
    """
    held = session.scalars(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), Delivery.lease_token == lease.token)
        .values(lease_until=None, lease_token=None)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return set(held)


NOT_SENT = PostOutcome(0, 0, "not sent: the worker is stopping")
LEASE_LAPSED = PostOutcome(0, 0, "not sent: the batch's lease may have lapsed")
UNSENT = (NOT_SENT, LEASE_LAPSED)


def _post(runtime: Runtime, request: _Outgoing) -> PostOutcome:
    """POST one delivery, unless the worker was told to stop or the batch's lease may have
    lapsed (both checked as each POST starts, so the batch begins no new round and only waits
    for the answers in flight)."""
    if queue.stopping():
        return NOT_SENT
    if not HELD.still_held(request.delivery_id, request.lease_token):
        return LEASE_LAPSED
    try:
        secret = runtime.box.decrypt(request.secret_ciphertext)
        payload = json.loads(request.payload_json)
        return runtime.outbound.post(request.target_url, request.message_id, payload, secret)
    except Exception as exc:  # an unsendable URL is a failed attempt, not a crashed task
        return PostOutcome(0, 0, f"could not send: {type(exc).__name__}")


def _record(
    runtime: Runtime,
    session: Session,
    delivery: Delivery,
    subscription: Subscription,
    attempt: PostOutcome,
) -> float | None:
    delivery.attempts += 1
    session.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            status=attempt.status or None,
            latency_ms=attempt.latency_ms,
            error=attempt.error,
        )
    )
    delivery.last_status, delivery.last_error = attempt.status or None, attempt.error
    # As `_release_if_ours` wrote them (its bulk UPDATE skips the session).
    delivery.lease_until, delivery.lease_token = None, None
    delay = _after_attempt(runtime, delivery, subscription, attempt.status, attempt.retry_after)
    _observe(delivery)
    return delay


def _observe(delivery: Delivery) -> None:
    """Count an attempt by what it led to; a delivered one's lag since the event's fan-out."""
    outcome = OUTCOMES.get(delivery.state, "retry")
    series = metrics.get()
    series.hook_deliveries.labels(outcome).inc()
    if outcome == "delivered" and delivery.delivered_at is not None:
        lag = (delivery.delivered_at - delivery.created_at).total_seconds()
        series.hook_delivery_lag_seconds.observe(lag)


def _after_attempt(
    runtime: Runtime,
    delivery: Delivery,
    subscription: Subscription,
    status: int,
    retry_after: float | None,
) -> float | None:
    now = datetime.now(UTC)
    if 200 <= status < 300:
        delivery.state, delivery.delivered_at = "delivered", now
        return None
    if status == 410:
        delivery.state = "cancelled"
        _end(subscription, "deleted", "the target answered 410 Gone", now)
        return None
    delay = backoff(runtime).delay(delivery.attempts, retry_after)
    if delay is None:
        delivery.state = "failed"
        _end(subscription, "disabled", f"delivery failed {delivery.attempts} times in a row", now)
        return None
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    return delay


def _end(subscription: Subscription, state: str, reason: str, now: datetime) -> None:
    subscription.state, subscription.state_reason, subscription.disabled_at = state, reason, now


@dataclass(frozen=True)
class Lease:
    won: list[int]  # the deliveries this caller holds
    token: str  # our mark on each of them (`lease_token`)
    claimed: float  # time.monotonic() before the lease's end was computed


def _claim(runtime: Runtime, delivery_ids: Sequence[int]) -> Lease:
    """Lease the due, unleased deliveries among `delivery_ids`."""
    claimed = time.monotonic()
    now = datetime.now(UTC)
    token = leases.new_token()
    with runtime.sessions() as session:
        won = session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(list(delivery_ids)))
            .where(Delivery.state == "pending")
            .where(Delivery.next_attempt_at <= now)  # never early: Retry-After is a floor
            .where(or_(Delivery.lease_until.is_(None), Delivery.lease_until < now))
            .values(lease_until=now + LEASE, lease_token=token)
            .returning(Delivery.id)
        ).all()
        session.commit()
    return Lease(list(won), token, claimed)


def due(runtime: Runtime, limit: int = 500) -> list[int]:
    """Pending deliveries whose task was lost (a killed worker, a flushed queue): due for at
    least a lease, and held by nobody. The grace spares the deliveries whose task is waiting in
    the queue right now (a fan-out's first attempts, a retry due this second) a duplicate."""
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(Delivery.id)
                .where(Delivery.state == "pending")
                .where(Delivery.next_attempt_at <= now - LEASE)
                .where(or_(Delivery.lease_until.is_(None), Delivery.lease_until < now))
                .order_by(Delivery.next_attempt_at)
                .limit(limit)
            )
        )
