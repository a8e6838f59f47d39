"""When a watch is polled: on its own beat of the clock, started by its first hook only.

A burst of subscriptions (1,000 hooks on 10 agents) used to queue one poll and a minute of beats
per hook, whose polls crowded the queue ahead of the deliveries, and beats counted from each
subscribe's own time, so the first `schedule_polls` beat landed anywhere (up to 27 s between two
polls at a 15 s interval).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from huey import Huey
from sqlalchemy import update

from bridge.hooks import detection
from bridge.hooks.tasks import HookTasks, beats, poll_phase
from bridge.infra.models import Watch
from bridge.web.context import service_of
from tests.conftest import bearer, runtime_of
from tests.hooks.test_hooks import HOOK_SETTINGS, connect
from tests.receivers import receiver


def test_beats_are_times_of_the_clock():
    """Polls every 15 s at `phase` seconds into each interval counted from the epoch, whoever
    asks and whenever: two overlapping windows give the same times, not shifted ones."""
    minute = 1_800_000_000.0  # a whole minute
    assert beats(minute + 20.5, minute + 81.5, 15, 3.25) == [
        minute + 33.25,
        minute + 48.25,
        minute + 63.25,
        minute + 78.25,
    ]
    later = beats(minute + 60.7, minute + 121.7, 15, 3.25)
    assert later[:2] == [minute + 63.25, minute + 78.25]
    assert beats(minute, minute + 61, 120, 100.0) == []  # a 2-minute interval: every other
    assert beats(minute + 50, minute + 111, 120, 100.0) == [minute + 100.0]
    assert len(beats(minute, minute + 61, 0.05, 0.01)) == 61  # at most one a second


def test_only_a_watch_s_first_hook_queues_polls(make_app, seeded):
    """The first hook on an agent queues a poll now and its beats of the coming minute, at the
    watch's phase; a second hook on the same agent queues nothing (the watch is on its beat)."""
    app = make_app(**{**HOOK_SETTINGS, "poll_interval_s": 15.0}, huey_immediate=False)
    huey = service_of(app, Huey)
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver() as rec:
        body = {"target_url": rec.url, "event": "new_conversation", "agent_id": agent}
        first = app.test_client().post("/v1/hooks", json=body, headers=bearer(token))
        assert first.status_code == 201
        queued = huey.pending()
        second = app.test_client().post("/v1/hooks", json=body, headers=bearer(token))
        assert second.status_code == 201
        assert len(huey.pending()) == len(queued)
    polls = [task for task in queued if task.name == "poll_watch"]
    now, *on_beat = polls
    assert now.eta is None
    (watch_id,) = {task.args[0] for task in polls}
    phase = poll_phase(watch_id, 15.0)
    assert len(on_beat) == 4
    for task in on_beat:
        seconds = task.eta.replace(tzinfo=UTC).timestamp()
        assert round((seconds - phase) % 15, 3) in (0.0, 15.0)


def test_a_late_beat_does_not_make_the_next_one_skip(make_app, seeded, sim_admin):
    """A beat that ran 4 s late (a busy queue) is followed 6 s later by the next, on-time one
    at a 10 s interval: that one reads ZappWay; the same beat run twice reads once."""
    app = make_app(**{**HOOK_SETTINGS, "poll_interval_s": 10.0})
    token = connect(app, seeded["key"])
    agent = seeded["agents"][0]["id"]
    with receiver() as rec:
        body = {"target_url": rec.url, "event": "new_conversation", "agent_id": agent}
        assert (
            app.test_client().post("/v1/hooks", json=body, headers=bearer(token)).status_code == 201
        )
    (watch_id,) = detection.watched(runtime_of(app))
    with runtime_of(app).sessions() as session:
        read_at = datetime.now(UTC) - timedelta(seconds=6)
        session.execute(update(Watch).where(Watch.id == watch_id).values(polled_at=read_at))
        session.commit()
    sim_admin.clear_requests()
    tasks = service_of(app, HookTasks)
    tasks.poll_watch(watch_id)
    tasks.poll_watch(watch_id)  # the same beat, queued by another worker
    lists = [r for r in sim_admin.requests() if r["path"].endswith("/conversations")]
    assert len(lists) == 1
