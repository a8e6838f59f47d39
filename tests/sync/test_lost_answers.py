"""A create whose answer the bridge never saw is never recorded as delivered blind (issue 16).

The simulator runs on a real socket and drops the connection after the headers of one upsert
(`reset` with `after_headers`): ZappWay stored the document, the bridge saw no upstream id. The
post's delete (or, on the legacy profile, its next version) then arrives; the bridge must find
the copy ZappWay holds instead of trusting the empty id.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from sqlalchemy import select

from bridge.infra.models import DocumentMapping
from tests.processes import running_worker, wait_until, worker_env
from tests.sync_helpers import FAST, Bridge, generic_body, hmac_headers, sim_store

UPSERT = "/upsert"
LONG_RETRY = (60.0, 60.0)  # the failed upsert is not retried before the next change arrives


@pytest.fixture
def unlimited(sim_admin):
    sim_admin.settings(rate_limit_enabled=False)


def copies(sim_app, datastore: str, name: str) -> list[str]:
    """Texts of the simulator's documents named `name` in the datastore."""
    store = sim_store(sim_app)
    with store.lock:
        return [d.text for d in store.documents_of(datastore) if d.name == name]


def lose_first_answer(bridge: Bridge, sim_admin, source, cms_id: str) -> None:
    """Publish `cms_id`; ZappWay stores it but the answer is cut after the headers."""
    sim_admin.add_fault("reset", path=UPSERT, times=1, after_headers=True)
    bridge.change(source, cms_id, 1, "first version")
    bridge.kick()
    bridge.run_for(0.5)
    row = bridge.row(cms_id)
    assert (row.state, row.upstream_id, row.attempts) == ("pending", None, 1)


def build(make_app, sim_admin, seeded, sim_server: str, profile: str) -> Bridge:
    if profile == "legacy":
        sim_admin.set_profile("legacy")
    base = f"{sim_server}/api" if profile == "legacy" else f"{sim_server}/api/v1"
    app = make_app(
        transport=None,
        upstream_base_url=base,
        upstream_profile=profile,
        sync_retry_schedule=LONG_RETRY,
        **FAST,
    )
    return Bridge(app, seeded["key"])


@pytest.mark.parametrize("profile", ["documented", "legacy"])
def test_delete_after_a_lost_create_answer_deletes_the_copy(
    make_app, seeded, sim_admin, sim_app, sim_server, unlimited, profile
):
    """The signed delete of a post whose first upsert answer was lost removes ZappWay's copy
    (found by listing the datastore) before the delete is reported delivered."""
    bridge = build(make_app, sim_admin, seeded, sim_server, profile)
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    lose_first_answer(bridge, sim_admin, source, "p1")
    assert copies(sim_app, datastore, "Title of p1") == ["first version"]  # ZappWay has it
    sim_admin.clear_requests()
    bridge.change(source, "p1", 2, "", event="deleted")
    bridge.kick()
    bridge.run_for(1.0)
    assert copies(sim_app, datastore, "Title of p1") == []
    assert bridge.row("p1").state == "delivered"
    assert [r["method"] for r in sim_admin.requests() if "/datasources/" in r["path"]] == ["DELETE"]


def test_delete_stays_pending_while_the_copy_cannot_be_looked_up(
    make_app, seeded, sim_admin, sim_app, sim_server, unlimited
):
    """While ZappWay cannot be asked whether it holds the lost create's copy, the delete is
    kept pending (not delivered); once it can, the copy is deleted."""
    bridge = build(make_app, sim_admin, seeded, sim_server, "documented")
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    lose_first_answer(bridge, sim_admin, source, "p1")
    sim_admin.add_fault("status", path=f"/datastores/{datastore}$", method="GET", status=503)
    bridge.change(source, "p1", 2, "", event="deleted")
    bridge.kick()
    bridge.run_for(1.0)
    row = bridge.row("p1")
    assert (row.state, row.op) == ("pending", "delete")
    assert "checked" in (row.last_error or "")
    assert copies(sim_app, datastore, "Title of p1") == ["first version"]
    sim_admin.clear_faults()
    with bridge.runtime.sessions() as session:  # the retry falls due now, not in a minute
        session.get(type(row), row.id).next_attempt_at = row.updated_at
        session.commit()
    bridge.kick()
    bridge.run_for(1.0)
    assert bridge.row("p1").state == "delivered"
    assert copies(sim_app, datastore, "Title of p1") == []


def test_legacy_update_after_a_lost_create_answer_adopts_the_copy(
    make_app, seeded, sim_admin, sim_app, sim_server, unlimited
):
    """On the legacy profile (every upsert creates), the next version of a post whose first
    create answer was lost replaces ZappWay's copy instead of adding a second one."""
    bridge = build(make_app, sim_admin, seeded, sim_server, "legacy")
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    lose_first_answer(bridge, sim_admin, source, "p1")
    bridge.change(source, "p1", 2, "second version")
    bridge.kick()
    bridge.run_for(1.0)
    assert copies(sim_app, datastore, "Title of p1") == ["second version"]
    row = bridge.row("p1")
    assert row.state == "delivered"
    assert row.upstream_id is not None


def test_legacy_update_adopts_the_copy_of_a_post_with_a_very_long_title(
    make_app, seeded, sim_admin, sim_app, sim_server, unlimited
):
    """A title longer than the 300 characters the map keeps of a sent name is still recognised
    in ZappWay's listing: the next version replaces the lost create's copy, not a second one."""
    bridge = build(make_app, sim_admin, seeded, sim_server, "legacy")
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    title = "A very long title " + "x" * 400

    def publish(version: int, text: str) -> None:
        payload = {**json.loads(generic_body("p1", version, text)), "title": title}
        body = json.dumps(payload).encode()
        answer = bridge.post(source, body, hmac_headers(source.secret, body))
        assert answer.status_code == 202, answer.get_json()
        bridge.kick()
        bridge.run_for(1.0)

    sim_admin.add_fault("reset", path=UPSERT, times=1, after_headers=True)
    publish(1, "first version")
    assert bridge.row("p1").upstream_id is None
    assert copies(sim_app, datastore, title) == ["first version"]  # ZappWay has it
    publish(2, "second version")
    assert copies(sim_app, datastore, title) == ["second version"]
    assert bridge.row("p1").state == "delivered"


@pytest.mark.slow
def test_delete_after_a_worker_killed_mid_create_deletes_the_copy(
    make_app, seeded, sim_admin, sim_app, sim_server, tmp_path, unlimited
):
    """SIGKILL a worker while its first upsert of a post is in flight (ZappWay applies it
    anyway); the post's delete, run by a restarted worker, deletes ZappWay's copy."""
    stale_s = 2.0
    app = make_app(
        transport=None,
        upstream_base_url=f"{sim_server}/api/v1",
        huey_immediate=False,
        sync_stale_after_s=stale_s,
        sync_retry_schedule=LONG_RETRY,
        **FAST,
    )
    bridge = Bridge(app, seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    sim_admin.add_fault("latency", path=UPSERT, seconds=3, times=1)
    env = worker_env(tmp_path, sim_server, BRIDGE_SYNC_STALE_AFTER=str(stale_s))
    log = tmp_path / "worker.log"
    with running_worker(env, log) as worker:
        bridge.change(source, "p1", 1, "first version")
        bridge.kick()
        wait_until(lambda: bridge.row("p1").upstream_id is None and leased(bridge), 30,
                   "the upsert in flight")  # fmt: skip
        time.sleep(0.3)
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
    wait_until(lambda: copies(sim_app, datastore, "Title of p1") == ["first version"], 10,
               "ZappWay to apply the upsert")  # fmt: skip
    bridge.change(source, "p1", 2, "", event="deleted")
    with running_worker(env, log):
        time.sleep(stale_s + 0.5)
        bridge.tasks.sweep_syncs.call_local()  # the minute's sweep, without waiting for it
        wait_until(lambda: bridge.row("p1").state == "delivered", 90, "the delete delivered")
    assert copies(sim_app, datastore, "Title of p1") == [], log.read_text()[-3000:]


def leased(bridge: Bridge) -> bool:
    with bridge.runtime.sessions() as session:
        return bool(
            session.scalar(
                select(DocumentMapping.id).where(DocumentMapping.lease_token.is_not(None))
            )
        )
