"""REST hooks: subscribe/list/unsubscribe, signed delivery, retries, 410, disable, replay.

Every delivery goes over real HTTP to a receiver on 127.0.0.1 (`tests/receivers.py`), so the
apps here allow private targets; `tests/test_ssrf.py` covers the refusal of such targets.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from huey import Huey
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook

from bridge.hooks import deliveries, detection
from bridge.hooks import tasks as hook_tasks
from bridge.hooks.tasks import HookTasks
from bridge.infra.models import Delivery, DeliveryAttempt
from bridge.web.context import service_of
from tests.conftest import bearer, runtime_of
from tests.receivers import DRIP, HANG, Received, Receiver, receiver

POLL = "/v1/triggers/new_conversation"
HOOK_SETTINGS = {
    "allow_private_targets": True,
    "poll_interval_s": 0.05,
    "upstream_max_retries": 0,
    "hook_retry_schedule": (0, 0.1, 0.1, 0.1, 0.1),
}


def hook_app(make_app, **overrides: Any) -> Flask:
    return make_app(**{**HOOK_SETTINGS, **overrides})


def connect(app: Flask, key: str) -> str:
    response = app.test_client().post("/v1/connections", json={"api_key": key})
    assert response.status_code == 201, response.get_json()
    token: str = response.get_json()["token"]
    return token


def subscribe(app: Flask, token: str, url: str, agent_id: str, **extra: Any) -> dict[str, Any]:
    body = {"target_url": url, "event": "new_conversation", "agent_id": agent_id, **extra}
    response = app.test_client().post("/v1/hooks", json=body, headers=bearer(token))
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def detect(app: Flask) -> None:
    """Run what the worker runs every poll interval: one `poll_watch` per watched agent."""
    time.sleep(0.06)  # past the poll interval, so the watch is due
    runtime = runtime_of(app)
    for watch_id in detection.watched(runtime):
        service_of(app, HookTasks).poll_watch(watch_id)


def deliver_one_through(
    app: Flask, sim_admin, token: str, agent_id: str, then: Callable[[], Any]
) -> dict[str, Any]:
    """Hook a receiver whose answer is `then()` on the agent, start a conversation, run the
    worker's poll and wait for the one POST; the hook."""
    with receiver(then=then) as rec:
        hook = subscribe(app, token, rec.url, agent_id)
        talk(sim_admin, agent_id)
        detect(app)
        assert len(rec.wait_for(1)) == 1
    return hook


def talk(sim_admin, agent_id: str, text: str = "Hello there", **options: Any) -> dict[str, Any]:
    messages = [{"from": "human", "text": text}, {"from": "agent", "text": "Hi!"}]
    return sim_admin.create_conversation(agent_id, messages=messages, **options)


def show(app: Flask, token: str, hook_id: str) -> Any:
    return app.test_client().get(f"/v1/hooks/{hook_id}", headers=bearer(token))


def verify(secret: str, request: Received) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return payload


def poll_items(app: Flask, token: str, agent_id: str) -> dict[str, dict[str, Any]]:
    response = app.test_client().get(
        POLL, query_string={"agent_id": agent_id, "limit": 100}, headers=bearer(token)
    )
    return {item["id"]: item for item in response.get_json()}


def deliveries_of(app: Flask, hook_id: str) -> list[Delivery]:
    with runtime_of(app).sessions() as session:
        rows = session.scalars(select(Delivery).where(Delivery.subscription_id == hook_id))
        return list(rows)


def drive(app: Flask, delivery_id: int, until: set[str], timeout: float = 5.0) -> str:
    """Attempt a delivery whenever it is due (as the worker would) until it reaches a state."""
    runtime = runtime_of(app)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries.attempt_delivery(runtime, delivery_id)
        with runtime_of(app).sessions() as session:
            state = session.get(Delivery, delivery_id).state
        if state in until:
            return str(state)
        time.sleep(0.02)
    raise AssertionError(f"delivery {delivery_id} stayed {state}")


@pytest.fixture
def happ(make_app) -> Flask:
    return hook_app(make_app)


@pytest.fixture
def token(happ, seeded) -> str:
    return connect(happ, seeded["key"])


@pytest.fixture
def agent(seeded) -> str:
    agent_id: str = seeded["agents"][0]["id"]
    return agent_id


# --- subscription lifecycle -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["target_url", "targetUrl", "url", "hookUrl"])
def test_subscribe_accepts_each_platform_name_for_the_url(happ, token, agent, name):
    """Zapier's targetUrl, Make/n8n url or hookUrl and target_url all subscribe: 201 + secret."""
    url = "http://127.0.0.1:9/hook"
    response = happ.test_client().post(
        "/v1/hooks", json={name: url, "agent_id": agent}, headers=bearer(token)
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["id"].startswith("hook_")
    assert body["secret"].startswith("whsec_")
    assert body["expiration_date"] is None
    assert body["target_url"] == url
    assert body["event"] == "new_conversation"
    assert body["state"] == "active"


def test_subscribe_accepts_the_dotted_event_name(happ, token, agent):
    """`conversation.created` is an alias of new_conversation."""
    body = subscribe(happ, token, "http://127.0.0.1:9/hook", agent, event="conversation.created")
    assert body["event"] == "new_conversation"


def test_subscribe_without_a_url_is_422_naming_target_url(happ, token, agent):
    """A subscription with no URL under any accepted name is refused naming target_url."""
    response = happ.test_client().post("/v1/hooks", json={"agent_id": agent}, headers=bearer(token))
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == ["target_url"]


def test_subscribe_without_agent_is_422_naming_agent_id(happ, token):
    """New conversations are detected per agent, so a hook must name its agent."""
    response = happ.test_client().post(
        "/v1/hooks", json={"target_url": "http://127.0.0.1:9/hook"}, headers=bearer(token)
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == ["agent_id"]


def test_unknown_event_is_422_naming_event(happ, token, agent):
    """An event the bridge does not emit is refused naming the field."""
    response = happ.test_client().post(
        "/v1/hooks",
        json={"target_url": "http://127.0.0.1:9/hook", "event": "agent.deleted", "agent_id": agent},
        headers=bearer(token),
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == ["event"]


def test_list_get_and_delete(happ, token, agent):
    """A hook is listed and shown without its secret; DELETE answers 204, then it is gone."""
    created = subscribe(happ, token, "http://127.0.0.1:9/hook", agent)
    client = happ.test_client()
    listed = client.get("/v1/hooks", headers=bearer(token))
    assert [h["id"] for h in listed.get_json()] == [created["id"]]
    shown = show(happ, token, created["id"])
    assert shown.status_code == 200
    assert shown.get_json()["deliveries"] == []
    for answer in (listed, shown):
        assert "secret" not in answer.get_json()
        assert created["secret"] not in answer.get_data(as_text=True)
    assert client.delete(f"/v1/hooks/{created['id']}", headers=bearer(token)).status_code == 204
    assert show(happ, token, created["id"]).status_code == 404
    assert client.delete(f"/v1/hooks/{created['id']}", headers=bearer(token)).status_code == 404
    assert client.get("/v1/hooks", headers=bearer(token)).get_json() == []


def test_another_connection_cannot_see_or_delete_a_hook(happ, token, agent, sim_admin):
    """Hooks are per connection: another tenant gets 404 and an empty list."""
    created = subscribe(happ, token, "http://127.0.0.1:9/hook", agent)
    other_org = sim_admin.create_org("Other Org")
    other = connect(happ, sim_admin.create_key(other_org["id"]))
    client = happ.test_client()
    assert show(happ, other, created["id"]).status_code == 404
    assert client.get("/v1/hooks", headers=bearer(other)).get_json() == []
    assert client.delete(f"/v1/hooks/{created['id']}", headers=bearer(other)).status_code == 404
    assert (
        client.post(f"/v1/hooks/{created['id']}/replay", headers=bearer(other)).status_code == 404
    )
    assert show(happ, token, created["id"]).get_json()["state"] == "active"


# --- delivery ---------------------------------------------------------------------------------


def test_new_conversation_is_delivered_once_per_subscription_signed(happ, token, agent, sim_admin):
    """Two hooks each get one signed POST whose body is the polling item for that conversation."""
    with receiver() as first, receiver() as second:
        hook_a = subscribe(happ, token, first.url, agent)
        hook_b = subscribe(happ, token, second.url, agent)
        fresh = talk(sim_admin, agent, "Where is my order?")
        detect(happ)
        detect(happ)
        poll_item = poll_items(happ, token, agent)[fresh["id"]]
        for rec, hook in ((first, hook_a), (second, hook_b)):
            (request,) = rec.wait_for(1)
            assert request.method == "POST"
            assert request.headers["content-type"] == "application/json"
            assert verify(hook["secret"], request) == poll_item
            assert request.headers["webhook-id"].endswith(hook["id"])
        assert poll_item["first_message"] == "Where is my order?"
        time.sleep(0.2)
        assert len(first.received) == len(second.received) == 1
        assert first.received[0].headers["webhook-id"] != second.received[0].headers["webhook-id"]


def test_signature_does_not_verify_with_another_hooks_secret(happ, token, agent, sim_admin):
    """Each hook has its own secret: one hook's signature fails under another's secret."""
    with receiver() as rec:
        subscribe(happ, token, rec.url, agent)
        other = subscribe(happ, token, "http://127.0.0.1:9/unused", agent)
        talk(sim_admin, agent)
        detect(happ)
        (request,) = rec.wait_for(1)
        with pytest.raises(Exception, match=r"(?i)signature"):
            Webhook(other["secret"]).verify(request.body, request.headers)


def test_conversation_created_before_the_first_poll_of_a_new_hook_is_delivered(
    make_app, seeded, sim_admin
):
    """A conversation begun between subscribe and the worker's first read is new, not history."""
    app = hook_app(make_app, huey_immediate=False)  # the first poll waits in the queue
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver() as rec:
        hook = subscribe(app, token, rec.url, agent)
        fresh = talk(sim_admin, agent)
        huey = service_of(app, Huey)
        while huey.pending_count():
            huey.execute(huey.dequeue())  # poll_watch seeds the watch and logs `fresh` as new
        while huey.pending_count():
            huey.execute(huey.dequeue())  # deliver
        (request,) = rec.wait_for(1)
        assert verify(hook["secret"], request)["id"] == fresh["id"]
    polled = poll_items(app, token, agent)
    assert {c["id"] for c in seeded["conversations"]} | {fresh["id"]} == set(polled)


def test_subscribing_polls_the_agent_at_once(happ, token, agent, sim_admin):
    """Subscribing seeds the agent's watch right away instead of at the worker's next minute."""
    sim_admin.clear_requests()
    subscribe(happ, token, "http://127.0.0.1:9/hook", agent)
    lists = [r for r in sim_admin.requests() if r["path"].endswith("/conversations")]
    assert len(lists) == 1


def test_seeded_conversations_are_never_pushed(happ, token, agent, sim_admin, seeded):
    """Conversations that existed before the hook show in polls but are never delivered."""
    with receiver() as rec:
        subscribe(happ, token, rec.url, agent)
        detect(happ)
        detect(happ)
        fresh = talk(sim_admin, agent)
        detect(happ)
        rec.wait_for(1)
        time.sleep(0.2)
        polled = poll_items(happ, token, agent)
        assert {c["id"] for c in seeded["conversations"]} < set(polled)
        assert [json.loads(r.body)["id"] for r in rec.received] == [fresh["id"]]


def test_events_logged_before_subscribing_are_not_pushed(happ, token, agent, sim_admin):
    """A conversation polled before the hook existed is not delivered to that hook."""
    talk(sim_admin, agent, "Before the hook")
    poll_items(happ, token, agent)  # seeds the watch, then logs nothing new
    time.sleep(0.06)
    early = talk(sim_admin, agent, "Still before the hook")
    assert early["id"] in poll_items(happ, token, agent)
    with receiver() as rec:
        subscribe(happ, token, rec.url, agent)
        late = talk(sim_admin, agent, "After the hook")
        detect(happ)
        rec.wait_for(1)
        time.sleep(0.2)
        assert [json.loads(r.body)["id"] for r in rec.received] == [late["id"]]


def test_a_hook_gets_only_its_agents_conversations(happ, token, seeded, sim_admin):
    """A hook on one agent is not sent another agent's conversations."""
    support, public = seeded["agents"][0]["id"], seeded["agents"][1]["id"]
    with receiver() as rec:
        hook = subscribe(happ, token, rec.url, support)
        subscribe(happ, token, "http://127.0.0.1:9/unused", public)
        talk(sim_admin, public, "For the public agent")
        mine = talk(sim_admin, support, "For support")
        detect(happ)
        rec.wait_for(1)
        time.sleep(0.2)
        assert [verify(hook["secret"], r)["id"] for r in rec.received] == [mine["id"]]


def test_unsubscribed_hook_gets_nothing_more(happ, token, agent, sim_admin):
    """After DELETE, new conversations are not sent to that hook."""
    with receiver() as rec:
        hook = subscribe(happ, token, rec.url, agent)
        talk(sim_admin, agent)
        detect(happ)
        rec.wait_for(1)
        happ.test_client().delete(f"/v1/hooks/{hook['id']}", headers=bearer(token))
        talk(sim_admin, agent)
        detect(happ)
        time.sleep(0.2)
        assert len(rec.received) == 1
        assert len(deliveries_of(happ, hook["id"])) == 1


def test_three_failures_then_success_via_the_worker(make_app, seeded, sim_admin):
    """A receiver failing 3 times then answering 200 gets 4 attempts: same id, fresh signatures."""
    app = hook_app(make_app, huey_immediate=False)
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    consumer = service_of(app, Huey).create_consumer(
        workers=2, worker_type="thread", periodic=False, max_delay=0.1, check_worker_health=False
    )
    consumer.start()
    try:
        with receiver([500, 500, 500]) as rec:
            hook = subscribe(app, token, rec.url, agent)
            fresh = talk(sim_admin, agent)
            time.sleep(0.06)
            for watch_id in detection.watched(runtime_of(app)):
                service_of(app, HookTasks).poll_watch(watch_id)  # enqueued, run by the consumer
            received = rec.wait_for(4, timeout=10)
            time.sleep(0.3)
    finally:
        consumer.stop(graceful=True)
    assert len(rec.received) == 4
    assert len({r.headers["webhook-id"] for r in received}) == 1
    for request in received:
        assert verify(hook["secret"], request)["id"] == fresh["id"]
        sent_at = int(request.headers["webhook-timestamp"])
        assert abs(sent_at - time.time()) < 30
    gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
    assert all(gap >= 0.07 for gap in gaps)  # 0.1 s schedule slots, -20 % jitter
    (delivery,) = show(app, token, hook["id"]).get_json()["deliveries"]
    assert delivery["state"] == "delivered"
    assert delivery["webhook_id"] == received[0].headers["webhook-id"]
    assert [a["status"] for a in delivery["attempts"]] == [500, 500, 500, 200]
    assert all(
        isinstance(a["latency_ms"], int) and a["latency_ms"] >= 0 for a in delivery["attempts"]
    )


def test_each_retry_is_signed_with_its_own_timestamp(happ, token, agent, sim_admin):
    """A retry a second later carries a newer webhook-timestamp and a different valid signature."""
    app = happ
    with receiver([500]) as rec:
        hook = subscribe(app, token, rec.url, agent)
        talk(sim_admin, agent)
        detect(app)
        (delivery,) = deliveries_of(app, hook["id"])
        time.sleep(1.05)
        drive(app, delivery.id, {"delivered"})
        first, second = rec.wait_for(2)
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    assert second.headers["webhook-signature"] != first.headers["webhook-signature"]
    assert verify(hook["secret"], first) == verify(hook["secret"], second)


def test_retry_delays_follow_the_schedule_with_jitter(make_app, seeded, sim_admin):
    """After a failure the next attempt is the schedule's slot ±20 %, spread across hooks."""
    app = hook_app(make_app, hook_retry_schedule=(0, 10))
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver(then=500) as rec:
        created = [subscribe(app, token, rec.url, agent)["id"] for _ in range(12)]
        talk(sim_admin, agent)
        detect(app)
        rec.wait_for(12)
    delays = []
    for hook_id in created:
        (delivery,) = deliveries_of(app, hook_id)
        assert delivery.attempts == 1
        with runtime_of(app).sessions() as session:
            attempted_at = session.scalar(
                select(DeliveryAttempt.attempted_at).where(
                    DeliveryAttempt.delivery_id == delivery.id
                )
            )
        delays.append((delivery.next_attempt_at - attempted_at).total_seconds())
    assert all(7.9 <= delay <= 12.1 for delay in delays), delays
    assert len({round(delay, 2) for delay in delays}) > 6


def test_410_deletes_the_subscription(happ, token, agent, sim_admin):
    """A 410 Gone answer removes the hook: no retries, GET is 404, later events not sent."""
    with receiver([410]) as rec:
        hook = subscribe(happ, token, rec.url, agent)
        talk(sim_admin, agent)
        detect(happ)
        rec.wait_for(1)
        assert show(happ, token, hook["id"]).status_code == 404
        assert happ.test_client().get("/v1/hooks", headers=bearer(token)).get_json() == []
        (delivery,) = deliveries_of(happ, hook["id"])
        assert delivery.state == "cancelled"
        assert deliveries.attempt_delivery(runtime_of(happ), delivery.id) is None
        talk(sim_admin, agent)
        detect(happ)
        time.sleep(0.2)
        assert len(rec.received) == 1
        assert len(deliveries_of(happ, hook["id"])) == 1


def failed_once(
    make_app: Any, seeded: dict[str, Any], sim_admin: Any, rec: Receiver
) -> tuple[Flask, str, dict[str, Any], Delivery]:
    """A hook on `rec` (which fails) after its first attempt: (app, token, hook, delivery).
    Retries are 50 ms apart, three attempts in all."""
    app = hook_app(make_app, hook_retry_schedule=(0, 0.05, 0.05))
    token = connect(app, seeded["key"])
    hook = subscribe(app, token, rec.url, seeded["agents"][0]["id"])
    talk(sim_admin, seeded["agents"][0]["id"])
    detect(app)
    rec.wait_for(1)
    (delivery,) = deliveries_of(app, hook["id"])
    return app, token, hook, delivery


def test_a_hook_waiting_to_retry_says_it_is_failing_and_why(make_app, seeded, sim_admin):
    """While its newest delivery waits for a retry, the API says the hook is failing and why
    (as the console does), in the hook and in the list; `failing` is null for a healthy one."""
    with receiver(then=500) as rec:
        app, token, hook, _delivery = failed_once(make_app, seeded, sim_admin, rec)
        assert show(app, token, hook["id"]).get_json()["failing"] == "the target answered 500"
        listed = app.test_client().get("/v1/hooks", headers=bearer(token)).get_json()
        assert [(h["state"], h["failing"]) for h in listed] == [
            ("active", "the target answered 500")
        ]
    assert hook["failing"] is None  # the subscribe answer: nothing attempted yet


def test_persistent_failure_fails_the_delivery_and_disables_the_hook(make_app, seeded, sim_admin):
    """Past the schedule the delivery fails and the hook is disabled with a reason; no more work."""
    with receiver(then=500) as rec:
        app, token, hook, delivery = failed_once(make_app, seeded, sim_admin, rec)
        assert drive(app, delivery.id, {"failed", "delivered"}) == "failed"
        body = show(app, token, hook["id"]).get_json()
        assert body["state"] == "disabled"
        assert "failed 3 times" in body["state_reason"]
        assert body["disabled_at"] is not None
        (shown,) = body["deliveries"]
        assert shown["state"] == "failed"
        assert [a["status"] for a in shown["attempts"]] == [500, 500, 500]
        talk(sim_admin, seeded["agents"][0]["id"])
        detect(app)
        time.sleep(0.2)
        assert len(rec.received) == 3
        assert len(deliveries_of(app, hook["id"])) == 1
        assert detection.watched(runtime_of(app)) == []


def test_redirect_is_not_followed(happ, token, agent, sim_admin):
    """A 302 counts as a failed attempt and nothing reaches the redirect's target."""
    with receiver() as target, receiver([(302, {"Location": target.url})]) as hook_rec:
        hook = subscribe(happ, token, hook_rec.url, agent)
        talk(sim_admin, agent)
        detect(happ)
        hook_rec.wait_for(1)
        time.sleep(0.3)
        assert target.received == []
    (delivery,) = show(happ, token, hook["id"]).get_json()["deliveries"]
    assert delivery["state"] == "pending"
    assert [a["status"] for a in delivery["attempts"]] == [302]


def test_receiver_that_never_answers_is_cut_at_the_timeout(make_app, seeded, sim_admin):
    """An attempt against a silent receiver ends at hook_timeout_s and counts as a failure."""
    app = hook_app(make_app, hook_timeout_s=0.5)
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver([HANG]) as rec:
        hook = subscribe(app, token, rec.url, agent)
        talk(sim_admin, agent)
        started = time.monotonic()
        detect(app)
        elapsed = time.monotonic() - started
        rec.wait_for(1)
    assert elapsed < 3
    (delivery,) = show(app, token, hook["id"]).get_json()["deliveries"]
    (attempt,) = delivery["attempts"]
    assert attempt["status"] is None
    assert attempt["error"] == "timeout"
    assert 400 <= attempt["latency_ms"] < 3000
    assert delivery["state"] == "pending"


def test_receiver_that_trickles_its_answer_is_cut_at_the_timeout(make_app, seeded, sim_admin):
    """hook_timeout_s is a deadline for the whole attempt, not for each read."""
    app = hook_app(make_app, hook_timeout_s=0.5)
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver([DRIP]) as rec:
        subscribe(app, token, rec.url, agent)
        talk(sim_admin, agent)
        started = time.monotonic()
        detect(app)
        elapsed = time.monotonic() - started
    assert elapsed < 1.5


def test_503_retry_after_is_honoured(happ, token, agent, sim_admin):
    """A 503 with Retry-After: 1 delays the next attempt by at least a second."""
    with receiver([(503, {"Retry-After": "1"})]) as rec:
        hook = subscribe(happ, token, rec.url, agent)
        talk(sim_admin, agent)
        detect(happ)
        (delivery,) = deliveries_of(happ, hook["id"])
        drive(happ, delivery.id, {"delivered"})
        first, second = rec.wait_for(2)
    assert second.at - first.at >= 1.0


def test_429_retry_after_is_honoured(happ, token, agent, sim_admin):
    """After a 429 with Retry-After: 1 the next attempt comes no earlier than 1 s later."""
    with receiver([(429, {"Retry-After": "1"})]) as rec:
        hook = subscribe(happ, token, rec.url, agent)
        talk(sim_admin, agent)
        detect(happ)
        (delivery,) = deliveries_of(happ, hook["id"])
        assert drive(happ, delivery.id, {"delivered"}) == "delivered"
        first, second = rec.wait_for(2)
    assert second.at - first.at >= 1.0
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_absurd_retry_after_falls_back_to_the_schedule(happ, token, agent, sim_admin):
    """A Retry-After of days is ignored: the next attempt follows the schedule (0.1 s ± 20 %)."""
    with receiver([(429, {"Retry-After": "864000"})]) as rec:
        hook = subscribe(happ, token, rec.url, agent)
        talk(sim_admin, agent)
        detect(happ)
        rec.wait_for(1)
    (delivery,) = deliveries_of(happ, hook["id"])
    wait = (delivery.next_attempt_at - delivery.created_at).total_seconds()
    assert delivery.state == "pending"
    assert wait < 5


def test_replay_since_resends_with_the_same_webhook_ids(happ, token, agent, sim_admin):
    """Replay `?since=` re-sends only events from then on, under their original webhook-ids."""
    with receiver() as rec:
        hook = subscribe(happ, token, rec.url, agent)
        talk(sim_admin, agent, "first")
        detect(happ)
        rec.wait_for(1)
        time.sleep(0.05)
        middle = datetime.now(UTC).isoformat()
        time.sleep(0.01)  # ZappWay times have millisecond precision
        second = talk(sim_admin, agent, "second")
        detect(happ)
        original = rec.wait_for(2)
        client = happ.test_client()
        response = client.post(
            f"/v1/hooks/{hook['id']}/replay", query_string={"since": middle}, headers=bearer(token)
        )
        assert response.status_code == 202
        assert response.get_json() == {"replayed": 1}
        replayed = rec.wait_for(3)[2]
        assert verify(hook["secret"], replayed)["id"] == second["id"]
        assert replayed.headers["webhook-id"] == original[1].headers["webhook-id"]
        everything = client.post(f"/v1/hooks/{hook['id']}/replay", headers=bearer(token))
        assert everything.get_json() == {"replayed": 2}
        again = rec.wait_for(5)[3:]
    assert sorted(r.headers["webhook-id"] for r in again) == sorted(rec.ids()[:2])


def test_replay_with_a_bad_since_is_422(happ, token, agent):
    """`since` must be an ISO 8601 time with a zone."""
    hook = subscribe(happ, token, "http://127.0.0.1:9/hook", agent)
    response = happ.test_client().post(
        f"/v1/hooks/{hook['id']}/replay", query_string={"since": "yesterday"}, headers=bearer(token)
    )
    assert response.status_code == 422


def test_replay_never_sends_seeded_conversations(happ, token, agent, sim_admin):
    """Replaying everything re-sends the hook's own events, not the seeded past ones."""
    with receiver() as rec:
        hook = subscribe(happ, token, rec.url, agent)
        fresh = talk(sim_admin, agent)
        detect(happ)
        rec.wait_for(1)
        response = happ.test_client().post(f"/v1/hooks/{hook['id']}/replay", headers=bearer(token))
        assert response.get_json() == {"replayed": 1}
        rec.wait_for(2)
        time.sleep(0.2)
    assert [json.loads(r.body)["id"] for r in rec.received] == [fresh["id"], fresh["id"]]


def test_replay_reactivates_a_disabled_hook(make_app, seeded, sim_admin):
    """Replaying a disabled hook makes it active again and delivers under the same id."""
    app = hook_app(make_app, hook_retry_schedule=(0, 0.05))
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver([500, 500]) as rec:
        hook = subscribe(app, token, rec.url, agent)
        talk(sim_admin, agent)
        detect(app)
        (delivery,) = deliveries_of(app, hook["id"])
        drive(app, delivery.id, {"failed"})
        assert show(app, token, hook["id"]).get_json()["state"] == "disabled"
        response = app.test_client().post(f"/v1/hooks/{hook['id']}/replay", headers=bearer(token))
        assert response.status_code == 202
        rec.wait_for(3)
        body = show(app, token, hook["id"]).get_json()
    assert body["state"] == "active"
    assert body["state_reason"] is None
    assert body["deliveries"][0]["state"] == "delivered"
    assert len(set(rec.ids())) == 1
    assert [r.headers["webhook-id"] for r in rec.received][-1] == rec.ids()[0]


def test_delivery_end_to_end_on_postgres(make_app, seeded, sim_admin, pg_url):
    """The same subscribe → detect → signed delivery works on PostgreSQL."""
    app = hook_app(make_app, database_url=pg_url)
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver([500]) as rec:
        hook = subscribe(app, token, rec.url, agent)
        fresh = talk(sim_admin, agent)
        detect(app)
        (delivery,) = deliveries_of(app, hook["id"])
        drive(app, delivery.id, {"delivered"})
        first, second = rec.wait_for(2)
    assert verify(hook["secret"], second)["id"] == fresh["id"]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    with runtime_of(app).sessions() as session:
        total = session.scalar(select(func.count()).select_from(Delivery))
    assert total == 1
    shown = show(app, token, hook["id"]).get_json()["deliveries"][0]
    assert [a["status"] for a in shown["attempts"]] == [500, 200]


def test_watches_are_polled_at_spread_phases():
    """Ten watches poll at ten different points of a 15 s interval (at least 0.8 s apart), so
    their fan-outs do not all land at the same instant."""
    phases = sorted(hook_tasks.poll_phase(watch_id, 15.0) for watch_id in range(1, 11))
    assert all(0 <= phase < 15 for phase in phases)
    assert min(b - a for a, b in itertools.pairwise(phases)) >= 0.8


def test_a_retry_for_a_deleted_hook_is_cancelled_quietly(make_app, seeded, sim_admin):
    """A hook deleted while its delivery waits for a retry: the retry cancels it, sends nothing
    and ends without an error."""
    with receiver(then=500) as rec:
        app, token, hook, delivery = failed_once(make_app, seeded, sim_admin, rec)
        assert delivery.state == "pending"
        deleted = app.test_client().delete(f"/v1/hooks/{hook['id']}", headers=bearer(token))
        assert deleted.status_code == 204
        time.sleep(0.1)
        sent = len(rec.received)
        assert deliveries.attempt_deliveries(runtime_of(app), [delivery.id]) == {}
        assert len(rec.received) == sent
    (delivery,) = deliveries_of(app, hook["id"])
    assert delivery.state == "cancelled"


def test_a_slow_receiver_does_not_hold_back_the_record_of_the_others(make_app, seeded, sim_admin):
    """Two hooks get one conversation in one batch: the fast receiver's delivery is recorded
    while the slow receiver still holds its request."""
    app = hook_app(make_app)
    token = connect(app, seeded["key"])
    agent_id = seeded["agents"][0]["id"]
    release = threading.Event()
    with receiver() as fast, receiver(then=lambda: 200 if release.wait(10) else 500) as slow:
        fast_hook = subscribe(app, token, fast.url, agent_id)
        slow_hook = subscribe(app, token, slow.url, agent_id)
        talk(sim_admin, agent_id)
        worker = threading.Thread(target=detect, args=(app,))
        worker.start()
        try:
            assert len(slow.wait_for(1)) == 1
            deadline = time.monotonic() + 5
            while deliveries_of(app, fast_hook["id"])[0].state != "delivered":
                assert time.monotonic() < deadline, "the fast delivery was not recorded"
                time.sleep(0.02)
            assert [d.state for d in deliveries_of(app, slow_hook["id"])] == ["pending"]
        finally:
            release.set()
            worker.join(10)
    assert [d.state for d in deliveries_of(app, slow_hook["id"])] == ["delivered"]


def test_an_answer_after_another_worker_took_over_is_not_recorded(make_app, seeded, sim_admin):
    """A POST that outlived its lease, while another worker claimed the delivery: its answer is
    not written over the other worker's claim (which will make and record its own attempt)."""
    app = hook_app(make_app)
    token = connect(app, seeded["key"])
    agent_id = seeded["agents"][0]["id"]
    other_lease = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)

    def another_worker_claims_it() -> int:
        with runtime_of(app).sessions() as session:
            session.execute(update(Delivery).values(lease_until=other_lease, lease_token="other"))
            session.commit()
        return 200

    hook = deliver_one_through(app, sim_admin, token, agent_id, another_worker_claims_it)
    (delivery,) = deliveries_of(app, hook["id"])
    assert (delivery.state, delivery.attempts, delivery.lease_until) == ("pending", 0, other_lease)
