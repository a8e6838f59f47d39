"""Short leases, renewed while their task runs (`bridge.infra.leases`).

A poll or a delivery batch that runs longer than the lease keeps it (no second worker reads the
same agent or sends the same delivery meanwhile); a lease its process stopped renewing (killed)
is free once it runs out; a renewal never revives a released lease or one another claim took.
Leases here are shortened to 0.6 s (a registry of their own, and the claim's length), so the
keeper renews them every tenth of a second.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bridge.hooks import deliveries, detection
from bridge.infra import leases
from bridge.infra.models import Delivery, Watch
from bridge.registry import trigger_for
from tests.conftest import runtime_of
from tests.hooks.test_detection_restart import a_watch_is_leased
from tests.hooks.test_hooks import (
    connect,
    deliver_one_through,
    deliveries_of,
    hook_app,
    subscribe,
    talk,
)
from tests.processes import wait_until
from tests.receivers import receiver

SHORT = timedelta(seconds=0.6)
NEW_CONVERSATION = trigger_for("new_conversation")


@pytest.fixture
def short_leases(monkeypatch) -> None:
    """Claims last `SHORT`, and the registries renew them by as much (every 0.1 s)."""
    for module, model in ((detection, Watch), (deliveries, Delivery)):
        monkeypatch.setattr(module, "LEASE", SHORT)
        monkeypatch.setattr(module, "HELD", leases.HeldLeases(model, SHORT))


def _connection_id(app, seeded) -> str:
    response = app.test_client().post("/v1/connections", json={"api_key": seeded["key"]})
    return str(response.get_json()["id"])


def _read_in_background(runtime, connection_id: str, agent: str) -> tuple[threading.Thread, list]:
    """Start a read of the agent on a thread; its `RefreshResult` lands in the list."""
    result: list[Any] = []
    reader = threading.Thread(
        target=lambda: result.append(
            detection.refresh(runtime, NEW_CONVERSATION, connection_id, agent, max_age_s=0)
        )
    )
    reader.start()
    return reader, result


def _lease_of(app, model: Any, row_id: int) -> tuple[datetime | None, str | None]:
    with runtime_of(app).sessions() as session:
        row = session.get(model, row_id)
        return row.lease_until, row.lease_token


def test_a_poll_that_outlasts_its_lease_keeps_it(
    make_app, app_database, seeded, sim_admin, short_leases
):
    """A read taking 1.5 s under a 0.6 s lease: a second caller 1 s in is turned away, and
    ZappWay is read once. Without renewal the second caller would read the agent too."""
    app = hook_app(make_app, **app_database)
    runtime = runtime_of(app)
    connection_id, agent = _connection_id(app, seeded), seeded["agents"][0]["id"]
    sim_admin.add_fault("latency", path="/conversations$", seconds=1.5)
    sim_admin.clear_requests()
    reader, first = _read_in_background(runtime, connection_id, agent)
    time.sleep(1.0)
    second = detection.refresh(runtime, NEW_CONVERSATION, connection_id, agent, max_age_s=0)
    reader.join(10)
    assert second.refreshed is False
    assert first[0].refreshed is True
    lists = [r for r in sim_admin.requests() if r["path"].endswith("/conversations")]
    assert len(lists) == 1
    with runtime.sessions() as session:
        watch = session.scalar(select(Watch).where(Watch.agent_id == agent))
    assert (watch.lease_until, watch.lease_token) == (None, None)


def test_a_delivery_to_a_slow_receiver_keeps_its_lease(
    make_app, app_database, seeded, sim_admin, short_leases
):
    """A receiver answering after 1.2 s under a 0.6 s lease: meanwhile no sweep finds the
    delivery due (it would be sent twice), and the answer is recorded as ours."""
    app = hook_app(make_app, **app_database)
    token = connect(app, seeded["key"])
    agent_id = seeded["agents"][0]["id"]
    due_while_sending: list[list[int]] = []

    def slow_answer() -> int:
        time.sleep(1.2)
        due_while_sending.append(deliveries.due(runtime_of(app)))
        return 200

    hook = deliver_one_through(app, sim_admin, token, agent_id, slow_answer)
    assert due_while_sending == [[]]
    (delivery,) = deliveries_of(app, hook["id"])
    assert (delivery.state, delivery.attempts, delivery.lease_token) == ("delivered", 1, None)


def test_a_lease_nobody_renews_runs_out(make_app, app_database, seeded, short_leases):
    """What a killed process leaves: held while renewed, free within the lease once dropped
    (the process's renewals stop with it)."""
    app = hook_app(make_app, **app_database)
    runtime = runtime_of(app)
    connection_id = _connection_id(app, seeded)
    with runtime.sessions() as session:
        watch_id = detection.ensure_watch(session, connection_id, "new_conversation", "a1").id
        token = detection._claim(session, watch_id, max_age_s=0)
    assert token is not None
    detection.HELD.hold(runtime.sessions, [watch_id], token, time.monotonic())
    time.sleep(3 * SHORT.total_seconds())
    with runtime.sessions() as session:
        assert detection._claim(session, watch_id, max_age_s=0) is None  # renewed: still ours
    detection.HELD.drop([watch_id], token)
    time.sleep(SHORT.total_seconds() + 0.2)
    with runtime.sessions() as session:
        assert detection._claim(session, watch_id, max_age_s=0) is not None


def test_renewal_leaves_released_and_taken_leases_alone(make_app, app_database, seeded):
    """A renewal moves only the leases still marked with the holder's token and not released:
    it never revives a lease its task freed, nor extends one another claim took."""
    app = hook_app(make_app, **app_database)
    runtime = runtime_of(app)
    connection_id = _connection_id(app, seeded)
    soon = datetime.now(UTC) + timedelta(seconds=5)
    with runtime.sessions() as session:
        ids = [
            detection.ensure_watch(session, connection_id, "new_conversation", agent).id
            for agent in ("held", "released", "taken")
        ]
        session.execute(update(Watch).values(lease_until=soon, lease_token="mine"))
        session.execute(
            update(Watch).where(Watch.id == ids[1]).values(lease_until=None, lease_token=None)
        )
        session.execute(update(Watch).where(Watch.id == ids[2]).values(lease_token="theirs"))
        session.commit()
    registry = leases.HeldLeases(Watch, timedelta(minutes=10))
    registry.hold(runtime.sessions, ids, "mine", time.monotonic())
    assert registry.renew() == 1
    held, released, taken = (_lease_of(app, Watch, i) for i in ids)
    assert held[0] > soon + timedelta(minutes=9) and held[1] == "mine"
    assert released == (None, None)
    assert taken == (soon, "theirs")
    assert registry.held(ids) == {ids[0]: "mine"}  # the renewal forgot the other two
    registry.drop(ids, "theirs")  # not this claim's token: still held
    assert registry.held(ids) == {ids[0]: "mine"}
    registry.drop(ids, "mine")
    assert registry.held(ids) == {} and registry.renew() == 0


def test_a_delivery_batch_lease_does_not_grow_with_the_batch(make_app, seeded, sim_admin):
    """Renewal, not a longer lease, covers a long batch: a worker killed during a fan-out of 30
    leaves the deliveries it held for `LEASE`, not for a lease per round of POSTs."""
    app = hook_app(make_app)
    token = connect(app, seeded["key"])
    agent_id = seeded["agents"][0]["id"]
    hooks = [subscribe(app, token, f"http://127.0.0.1:9/{i}", agent_id) for i in range(30)]
    talk(sim_admin, agent_id)
    runtime = runtime_of(app)
    time.sleep(0.06)
    with runtime.sessions() as session:
        (connection_id,) = session.scalars(select(Watch.connection_id))
    detection.refresh(runtime, NEW_CONVERSATION, connection_id, agent_id, max_age_s=0)
    ids = [d.id for hook in hooks for d in deliveries_of(app, hook["id"])]
    assert len(ids) == 30
    before = datetime.now(UTC)
    lease = deliveries._claim(runtime, ids)  # the worker that then died
    assert sorted(lease.won) == sorted(ids)
    ends = {_lease_of(app, Delivery, i)[0] for i in ids}
    (end,) = ends
    assert end <= before + deliveries.LEASE + timedelta(seconds=1)


def test_a_read_whose_lease_was_taken_over_leaves_the_new_lease(
    make_app, app_database, seeded, sim_admin
):
    """A read whose process stalled past its lease, while another claimed the watch: the old
    read still logs what it found, but frees nothing that is not its own."""
    app = hook_app(make_app, **app_database)
    runtime = runtime_of(app)
    connection_id, agent = _connection_id(app, seeded), seeded["agents"][0]["id"]
    sim_admin.add_fault("latency", path="/conversations$", seconds=0.5)
    theirs = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    reader, result = _read_in_background(runtime, connection_id, agent)
    wait_until(lambda: a_watch_is_leased(app), 5, "the read's lease")  # it waits for ZappWay
    with runtime.sessions() as session:  # the read that took over, and got further
        session.execute(
            update(Watch).values(lease_until=theirs, lease_token="theirs", cursor_created_at=later)
        )
        session.commit()
    reader.join(10)
    assert result[0].refreshed is True
    with runtime.sessions() as session:
        watch = session.scalar(select(Watch).where(Watch.agent_id == agent))
    assert (watch.lease_until, watch.lease_token) == (theirs, "theirs")
    assert watch.cursor_created_at == later  # not moved back
    assert watch.seeded_at is not None  # what it read was logged


class _FailingOnce(leases.HeldLeases):
    """A registry whose first renewal fails, as when the database is away for a moment."""

    failed = False

    def renew(self) -> int:
        if not self.failed:
            self.failed = True
            raise RuntimeError("the database is away")
        return super().renew()


def test_the_keeper_goes_on_after_a_failed_renewal(make_app, seeded):
    """A renewal that fails (database away) is tried again at the next tick; the lease holds."""
    app = hook_app(make_app)
    runtime = runtime_of(app)
    connection_id = _connection_id(app, seeded)
    registry = _FailingOnce(Watch, SHORT)
    with runtime.sessions() as session:
        watch_id = detection.ensure_watch(session, connection_id, "new_conversation", "a1").id
        session.execute(
            update(Watch).values(lease_until=datetime.now(UTC) + SHORT, lease_token="mine")
        )
        session.commit()
    registry.hold(runtime.sessions, [watch_id], "mine", time.monotonic())
    time.sleep(3 * SHORT.total_seconds())
    assert registry.failed
    until, token = _lease_of(app, Watch, watch_id)
    assert token == "mine" and until > datetime.now(UTC)
    registry.drop([watch_id], "mine")


class NeverRenewing(leases.HeldLeases):
    """A registry whose periodic renewals all fail while it holds a lease: a process stalled
    past its renewals (a renewal made on the spot, `still_held`, still reaches the database)."""

    def renew(self) -> int:
        if self._held:
            raise RuntimeError("the database is away")
        return 0


def _held_watch(app, seeded) -> int:
    """A watch leased with the token "mine" for `SHORT`."""
    runtime = runtime_of(app)
    with runtime.sessions() as session:
        watch_id = detection.ensure_watch(
            session, _connection_id(app, seeded), "new_conversation", "a1"
        ).id
        session.execute(
            update(Watch).values(lease_until=datetime.now(UTC) + SHORT, lease_token="mine")
        )
        session.commit()
    return watch_id


def test_a_lease_is_surely_held_only_while_renewals_come(make_app, seeded):
    """`surely_held` stays true while renewals succeed, and turns false once the last one is
    older than the lease less a renewal's interval: the row may be another worker's by then."""
    app = hook_app(make_app)
    runtime = runtime_of(app)
    watch_id = _held_watch(app, seeded)
    renewing, failing = leases.HeldLeases(Watch, SHORT), NeverRenewing(Watch, SHORT)
    for registry in (renewing, failing):
        registry.hold(runtime.sessions, [watch_id], "mine", time.monotonic())
        assert registry.surely_held(watch_id, "mine")
        assert not registry.surely_held(watch_id, "theirs")
    time.sleep(2 * SHORT.total_seconds())
    assert renewing.surely_held(watch_id, "mine")
    assert not failing.surely_held(watch_id, "mine")
    renewing.drop([watch_id], "mine")
    failing.drop([watch_id], "mine")
    assert not renewing.surely_held(watch_id, "mine")


def test_a_renewal_that_finds_the_row_taken_forgets_it(make_app, seeded):
    """Another claim took the row (ours had lapsed): the next renewal forgets our lease, so
    the task starts nothing more on it."""
    app = hook_app(make_app)
    runtime = runtime_of(app)
    watch_id = _held_watch(app, seeded)
    registry = leases.HeldLeases(Watch, SHORT)
    registry.hold(runtime.sessions, [watch_id], "mine", time.monotonic())
    with runtime.sessions() as session:
        session.execute(update(Watch).values(lease_token="theirs"))
        session.commit()
    wait_until(lambda: not registry.surely_held(watch_id, "mine"), 5, "the renewal's verdict")
    assert registry.held([watch_id]) == {}
    assert _lease_of(app, Watch, watch_id)[1] == "theirs"


@pytest.mark.parametrize("taken", [True, False], ids=["taken-over", "not-taken"])
def test_a_batch_whose_lease_lapsed_sends_only_what_is_still_its_own(
    make_app, app_database, seeded, sim_admin, short_leases, monkeypatch, taken
):
    """One POST at a time to a receiver answering in 0.8 s, while no renewal gets through under
    a 0.6 s lease. If another worker took the deliveries over meanwhile, the second is not sent
    (the other worker sends it) and the first's answer is not recorded as ours. If nobody did,
    the lease is renewed as the second POST starts, and both are sent."""
    monkeypatch.setattr(deliveries, "HELD", NeverRenewing(Delivery, SHORT))
    monkeypatch.setattr(deliveries, "POST_PARALLELISM", 1)
    app = hook_app(make_app, **app_database)
    runtime = runtime_of(app)
    token = connect(app, seeded["key"])
    agent_id = seeded["agents"][0]["id"]

    def slow_answer() -> int:
        if taken:  # another worker's claim, made while ours had lapsed
            with runtime.sessions() as session:
                session.execute(
                    update(Delivery).values(
                        lease_token="theirs", lease_until=datetime.now(UTC) + timedelta(minutes=1)
                    )
                )
                session.commit()
        time.sleep(0.8)
        return 200

    with receiver(then=slow_answer) as rec:
        hooks = [subscribe(app, token, f"{rec.url}?hook={i}", agent_id) for i in range(2)]
        talk(sim_admin, agent_id)
        time.sleep(0.06)
        detection.refresh(runtime, NEW_CONVERSATION, _watched_connection(app), agent_id, 0)
        ids = [d.id for hook in hooks for d in deliveries_of(app, hook["id"])]
        attempts = deliveries.attempt_batch(runtime, ids)
        assert len(rec.received) == (1 if taken else 2)
    rows = [deliveries_of(app, hook["id"])[0] for hook in hooks]
    assert attempts.handed_back == []
    if taken:
        assert [(d.state, d.attempts, d.lease_token) for d in rows] == [
            ("pending", 0, "theirs")
        ] * 2
    else:
        assert [(d.state, d.attempts, d.lease_token) for d in rows] == [("delivered", 1, None)] * 2


def _watched_connection(app) -> str:
    with runtime_of(app).sessions() as session:
        (connection_id,) = session.scalars(select(Watch.connection_id))
    return str(connection_id)
