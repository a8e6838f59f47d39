"""A new hook is owed only what happens after it subscribed, however late that is detected.

Zapier turns a Zap on by subscribing its REST hook: conversations begun before that must never
reach it, even when the bridge only sees them after the subscribe (the agent's watch was left
unpolled when its last hook went away, a poll was already reading, or detection lags by an
interval), while the hooks already there keep getting every conversation. ZappWay's times are
set here by backdating a conversation, as if it had begun that long before the subscribe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from flask import Flask
from sqlalchemy import update

from bridge.infra.models import Subscription
from tests.conftest import bearer, runtime_of
from tests.hooks.test_hooks import (
    HOOK_SETTINGS,
    connect,
    deliveries_of,
    detect,
    poll_items,
    subscribe,
    talk,
)
from tests.receivers import Receiver, receiver


def begun_ago(sim_admin, agent_id: str, seconds: float, text: str) -> dict[str, Any]:
    """A conversation ZappWay says began `seconds` ago (only now seen by the bridge)."""
    moment = datetime.now(UTC) - timedelta(seconds=seconds)
    return talk(sim_admin, agent_id, text, created_at=moment.isoformat().replace("+00:00", "Z"))


def subscribed_long_ago(app: Flask, hook: dict[str, Any]) -> None:
    """The hook has been there for an hour (owed everything of the past hour)."""
    with runtime_of(app).sessions() as session:
        session.execute(
            update(Subscription)
            .where(Subscription.id == hook["id"])
            .values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
        session.commit()


def an_old_hook_then_a_conversation(
    app: Flask, sim_admin: Any, token: str, agent: str, rec: Receiver
) -> dict[str, Any]:
    """A hook there for an hour on `rec`, its agent read once, then a conversation begun 41 s
    ago (before the second hook a test subscribes next)."""
    subscribed_long_ago(app, subscribe(app, token, rec.url, agent))
    detect(app)
    return begun_ago(sim_admin, agent, 41, "Begun before the second hook")


def pushed(rec: Receiver) -> list[str]:
    return [json.loads(r.body)["id"] for r in rec.received]


def test_a_new_hook_on_an_agent_left_without_hooks_gets_nothing_from_before(
    make_app, seeded, sim_admin
):
    """The tester's case: the agent's only hook is deleted (its watch stays, with its cursor,
    and is no longer polled), a conversation begins, a new hook subscribes 41 s later: the new
    hook's first poll finds that conversation but does not send it; the next one is sent."""
    app = make_app(**HOOK_SETTINGS)
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver() as old:
        first = subscribe(app, token, old.url, agent)
        detect(app)  # the watch exists and has been read
        deleted = app.test_client().delete(f"/v1/hooks/{first['id']}", headers=bearer(token))
        assert deleted.status_code == 204
        before = begun_ago(sim_admin, agent, 41, "Begun before the new hook")
        with receiver() as rec:
            hook = subscribe(app, token, rec.url, agent)  # polls the watch at once
            detect(app)
            time.sleep(0.2)
            assert pushed(rec) == []
            assert deliveries_of(app, hook["id"]) == []
            after = talk(sim_admin, agent, "Begun after the new hook")
            detect(app)
            rec.wait_for(1)
            time.sleep(0.2)
            assert pushed(rec) == [after["id"]]
        assert pushed(old) == []
    assert {before["id"], after["id"]} <= set(poll_items(app, token, agent))  # polls show both
    replayed = app.test_client().post(f"/v1/hooks/{hook['id']}/replay", headers=bearer(token))
    assert replayed.get_json() == {"replayed": 1}  # never owed `before`, so never replayed


def test_a_hook_joining_others_gets_nothing_from_before_while_they_get_everything(
    make_app, seeded, sim_admin
):
    """A conversation begun before a second hook subscribed but detected after it: the hook
    already there gets it (no gap), the new one does not; both get what begins afterwards."""
    app = make_app(**HOOK_SETTINGS)
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver() as rec_a, receiver() as rec_b:
        before = an_old_hook_then_a_conversation(app, sim_admin, token, agent, rec_a)
        hook_b = subscribe(app, token, rec_b.url, agent)  # no poll: the watch is on its beat
        detect(app)
        rec_a.wait_for(1)
        after = talk(sim_admin, agent, "Begun after both hooks")
        detect(app)
        rec_a.wait_for(2)
        rec_b.wait_for(1)
        time.sleep(0.2)
        assert pushed(rec_a) == [before["id"], after["id"]]
        assert pushed(rec_b) == [after["id"]]
    replayed = app.test_client().post(f"/v1/hooks/{hook_b['id']}/replay", headers=bearer(token))
    assert replayed.get_json() == {"replayed": 1}


class AfterTheList(httpx.BaseTransport):
    """The simulator's transport, plus one action run once a conversation list is answered:
    the moment a poll holding the watch's lease has read what it will log."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.action: Callable[[], Any] | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/conversations") and self.action is not None:
            action, self.action = self.action, None
            action()
        return response


def test_a_hook_subscribed_while_a_poll_is_reading_gets_nothing_that_poll_found(
    make_app, seeded, sim_admin, sim_transport
):
    """A poll has read the list (holding the lease) when a hook subscribes, then logs and fans
    out what it read: the hook subscribed meanwhile is not sent what began before it."""
    transport = AfterTheList(sim_transport)
    app: Flask = make_app(transport, **HOOK_SETTINGS)
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver() as rec_a, receiver() as rec_b:
        before = an_old_hook_then_a_conversation(app, sim_admin, token, agent, rec_a)
        late: list[dict[str, Any]] = []
        transport.action = lambda: late.append(subscribe(app, token, rec_b.url, agent))
        detect(app)
        assert transport.action is None and len(late) == 1
        rec_a.wait_for(1)
        time.sleep(0.2)
        assert pushed(rec_a) == [before["id"]]
        assert pushed(rec_b) == []
        assert deliveries_of(app, late[0]["id"]) == []


def test_a_conversation_stamped_a_little_before_the_subscribe_is_still_sent(
    make_app, seeded, sim_admin
):
    """ZappWay's clock may run a little behind the bridge's: a conversation it stamps two
    seconds before the subscribe may have begun after it, so it is sent rather than lost."""
    app = make_app(**HOOK_SETTINGS)
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver() as rec:
        subscribe(app, token, rec.url, agent)
        detect(app)
        close = begun_ago(sim_admin, agent, 2, "Stamped just before the subscribe")
        detect(app)
        rec.wait_for(1)
        time.sleep(0.2)
        assert pushed(rec) == [close["id"]]


def test_replay_still_sends_what_a_hook_was_sent_before_the_rule(
    make_app, seeded, sim_admin, caplog
):
    """An event the hook was already sent stays its own for replay, even if by the time rule it
    would not have been owed (sent before this rule was deployed); and an event the rule keeps
    from a hook is logged, not dropped silently."""
    app = make_app(**HOOK_SETTINGS)
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver() as rec:
        hook = subscribe(app, token, rec.url, agent)
        sent = talk(sim_admin, agent, "Sent under the old rule")
        detect(app)
        rec.wait_for(1)
        with runtime_of(app).sessions() as session:  # as if subscribed after it happened
            session.execute(update(Subscription).where(Subscription.id == hook["id"])
                            .values(created_at=datetime.now(UTC) + timedelta(hours=1)))  # fmt: skip
            session.commit()
        replayed = app.test_client().post(f"/v1/hooks/{hook['id']}/replay", headers=bearer(token))
        assert replayed.get_json() == {"replayed": 1}
        rec.wait_for(2)
        assert pushed(rec) == [sent["id"], sent["id"]]
        with caplog.at_level("INFO", logger="bridge.hooks.event_log"):
            talk(sim_admin, agent, "Begun before the hook, by its new time")
            detect(app)
        assert f"hooks.not_owed hook={hook['id']}" in caplog.text
