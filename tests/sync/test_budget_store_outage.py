"""A sync run that cannot reach the shared rate budget (Redis) sends nothing, keeps its
documents pending, and retries: the worker never records a call it could not count."""

from __future__ import annotations

import copy

from huey import Huey

from bridge.sync.tasks import SyncTasks
from bridge.web.context import service_of
from tests.conftest import runtime_of
from tests.sync_helpers import FAST, Bridge, upstream_documents

NOTHING_LISTENS = "redis://127.0.0.1:1/0"


def on_app(bridge: Bridge, app) -> Bridge:
    """The same connection driven through another bridge app (same database)."""
    other = copy.copy(bridge)
    other.app, other.client, other.runtime = app, app.test_client(), runtime_of(app)
    other.huey, other.tasks = service_of(app, Huey), service_of(app, SyncTasks)
    return other


def test_sync_keeps_documents_pending_while_the_budget_store_is_unreachable(
    make_app, seeded, sim_admin, sim_app
):
    """With Redis refusing connections the document stays pending (a retry scheduled, nothing
    sent to ZappWay); once the store answers, the same document is delivered."""
    settings = {**FAST, "sync_retry_schedule": (0.5, 0.5, 0.5)}
    bridge = Bridge(make_app(**settings), seeded["key"])
    datastore = seeded["datastores"][0]["id"]
    source = bridge.create_source(datastore)
    cut_off = on_app(bridge, make_app(redis_url=NOTHING_LISTENS, **settings))
    bridge.change(source, "p1", 1, "kept until counted")
    cut_off.kick()
    cut_off.run_for(0.2)
    row = cut_off.row("p1")
    assert (row.state, row.upstream_id) == ("pending", None)
    assert row.attempts >= 1
    assert "rate-budget store is unreachable" in (row.last_error or "")
    assert [r for r in sim_admin.requests() if r["path"].endswith("/upsert")] == []
    bridge.kick()
    bridge.drain()
    assert bridge.row("p1").state == "delivered"
    texts = [doc.text for doc in upstream_documents(sim_app, datastore).values()]
    assert texts.count("kept until counted") == 1
