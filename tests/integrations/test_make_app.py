"""The generated Make app: each module's and RPC's request rendered as Make would, sent live.

`make_iml.py` renders the IML (URL, method, headers, qs, body from the module's parameters,
with base.iml.json merged in) and each answer is checked against the module's interface.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integrations.live import INTEGRATIONS, LiveBridge, live_bridge
from tests.integrations.make_iml import Connection, MakeApp, MakeError, call, check_interface
from tests.receivers import receiver

EXTRA_AGENTS = 104


@pytest.fixture(scope="module")
def bridge(tmp_path_factory) -> Iterator[LiveBridge]:
    with live_bridge(tmp_path_factory.mktemp("make")) as live:
        for number in range(EXTRA_AGENTS):
            live.sim.create_agent(live.seeded["org"]["id"], f"Agent {number:03d}")
        yield live


@pytest.fixture(scope="module")
def app() -> MakeApp:
    return MakeApp(INTEGRATIONS / "make")


def context(bridge: LiveBridge, parameters: dict[str, Any], **extra: Any) -> dict[str, Any]:
    connection = Connection(bridge.url, bridge.token).context()
    return {"connection": connection, "parameters": parameters, **extra}


def run_module(app, bridge, name: str, parameters: dict[str, Any], **extra: Any) -> list[Any]:
    files = app.files("module", name)
    _, outputs = call(app, files["communication"], context(bridge, parameters, **extra))
    for output in outputs:
        check_interface(files["interface"], output, f"{name}: ")
    return outputs


def test_connection_is_verified_by_get_me_and_labelled(app, bridge):
    """The connection calls GET /v1/me with the token; its label and uid come from the answer."""
    communication = app.files("connection", "zappwayBridge")["communication"]
    params = {"baseUrl": bridge.url, "token": bridge.token}
    (response,), _ = call(app, communication, {"parameters": params}, use_base=False)
    assert response.request.url.path == "/v1/me"
    from tests.integrations.make_iml import render

    scope = {"body": response.json()}
    assert render(communication["response"]["metadata"]["value"], scope) == "Live"
    assert render(communication["response"]["uid"], scope) == bridge.seeded["org"]["id"]


def test_connection_with_a_bad_token_fails(app, bridge):
    """A wrong token is refused by the verification call (401)."""
    communication = app.files("connection", "zappwayBridge")["communication"]
    params = {"baseUrl": bridge.url, "token": "zwb_" + "A" * 43}
    with pytest.raises(MakeError) as failed:
        call(app, communication, {"parameters": params}, use_base=False)
    assert failed.value.status == 401


def test_agents_rpc_pages_until_a_short_page(app, bridge):
    """listAgents asks page 1, 2... (Make's pagination.page) and gets all 106 agents once."""
    communication = app.files("rpc", "listAgents")["communication"]
    responses, options = call(app, communication, context(bridge, {}))
    assert [r.request.url.params["page"] for r in responses] == ["1", "2"]
    assert len(options) == EXTRA_AGENTS + 2
    assert len({o["value"] for o in options}) == len(options)
    assert all(set(o) == {"label", "value"} for o in options)


def test_datastores_rpc_lists_the_datastore(app, bridge):
    """listDatastores offers each datastore as {label, value}."""
    _, options = call(app, app.files("rpc", "listDatastores")["communication"], context(bridge, {}))
    assert {"label": "Help Center", "value": bridge.datastore} in options


def test_query_agent_module(app, bridge):
    """Query Agent sends the mapped parameters and answers in its declared interface."""
    (answer,) = run_module(
        app, bridge, "queryAgent",
        {"agent_id": bridge.agent, "query": "What is your return policy?",
         "contact": {"email": "ada@example.com"}},
    )  # fmt: skip
    assert answer["status"] == "answered"
    assert answer["answer"]


def test_upsert_search_and_delete_document_modules(app, bridge):
    """Upsert Document, then Search Datastore finds it, then Delete Document removes it."""
    document = {"id": "make-doc-1", "text": "Gift cards never expire.", "title": "Gift cards",
                "metadata": {"team": "support"}}  # fmt: skip
    (upserted,) = run_module(
        app, bridge, "upsertDocument", {"datastore_id": bridge.datastore, "document": document}
    )
    assert upserted["created"] == 1
    batch = [{"id": "make-doc-2", "text": "Second."}, {"id": "make-doc-3", "text": "Third."}]
    (second,) = run_module(
        app, bridge, "upsertDocument", {"datastore_id": bridge.datastore, "documents": batch}
    )
    assert second["created"] == 2
    found = run_module(
        app, bridge, "queryDatastore",
        {"datastore_id": bridge.datastore, "query": "return window", "top_k": 3},
    )  # fmt: skip
    assert found
    assert all(item["text"] for item in found)
    (deleted,) = run_module(
        app,
        bridge,
        "deleteDocument",
        {"datastore_id": bridge.datastore, "document_id": "make-doc-1"},
    )
    assert deleted["deleted"] is True
    assert deleted["upstream_id"] == upserted["documents"][0]["upstream_id"]


def test_invalid_input_is_a_data_error(app, bridge):
    """A 422 is Make's DataError with the bridge's message (the scenario stays on)."""
    with pytest.raises(MakeError) as failed:
        run_module(app, bridge, "queryDatastore",
                   {"datastore_id": bridge.datastore, "query": "x", "top_k": 500})  # fmt: skip
    assert failed.value.kind == "DataError"
    assert "top_k" in failed.value.message


def test_rate_limit_is_a_rate_limit_error(app, bridge):
    """A 429 is Make's RateLimitError (the next run is delayed), never a deactivating error."""
    bridge.sim.add_fault("rate_limit", path="/datastores", retry_after=7, times=10)
    try:
        with pytest.raises(MakeError) as failed:
            call(app, app.files("rpc", "listDatastores")["communication"], context(bridge, {}))
    finally:
        bridge.sim.clear_faults()
    assert failed.value.status == 429
    assert failed.value.kind == "RateLimitError"


def test_watch_trigger_follows_its_date_cursor(app, bridge):
    """The watch trigger sends data.lastDate as `since`: everything first, then only newer."""
    params = {"agent_id": bridge.agent, "limit": 10}
    first = run_module(app, bridge, "watchNewConversation", params, data={"lastDate": "1970-01-01"})
    assert len(first) >= 3
    newest = first[0]["created_at"]
    communication = app.files("module", "watchNewConversation")["communication"]
    from tests.integrations.make_iml import render

    assert render(communication["response"]["trigger"]["date"], {"item": first[0]}) == newest
    time.sleep(1.1)  # past the seconds of the newest item's time
    created = bridge.sim.create_conversation(
        bridge.agent, messages=[{"from": "human", "text": "Anyone there?"}]
    )
    time.sleep(1.1)  # the bridge reads ZappWay at most once per poll interval (1 s here)
    later = run_module(app, bridge, "watchNewConversation", params, data={"lastDate": newest})
    assert [item["id"] for item in later] == [created["id"]]


def test_watch_trigger_epoch_offers_recent_items(app, bridge):
    """ "Choose where to start" lists recent conversations with a label and a date."""
    epoch = app.files("module", "watchNewConversation")["communication"]["epoch"]
    _, choices = call(app, epoch, context(bridge, {"agent_id": bridge.agent}))
    assert choices
    assert all(c["label"] and c["date"] for c in choices)


def test_instant_trigger_attaches_receives_and_detaches(app, bridge):
    """Attach subscribes Make's webhook URL, a new conversation is delivered to it in the
    interface's shape, and detach unsubscribes."""
    webhook = app.files("webhook", "newConversation")
    module = app.files("module", "watchNewConversationInstant")
    with receiver() as rec:
        scope = context(bridge, {"agent_id": bridge.agent}, webhook={"url": rec.url})
        _, (data,) = call(app, webhook["attach"], scope)
        created = bridge.sim.create_conversation(
            bridge.agent, messages=[{"from": "human", "text": "Instant?"}]
        )
        (delivery,) = rec.wait_for(1, timeout=20)
    from tests.integrations.make_iml import render

    body = httpx.Response(200, content=delivery.body).json()
    output = render(webhook["communication"]["output"], {"body": body})
    item = render(module["communication"]["output"], {"body": output})
    check_interface(module["interface"], item, "instant: ")
    assert item["id"] == created["id"]
    (detached,), _ = call(
        app, webhook["detach"], {**scope, "webhook": {**scope["webhook"], **data}}
    )
    assert detached.status_code == 204
    gone = httpx.get(f"{bridge.url}/v1/hooks/{data['externalHookId']}", headers=bridge.headers())
    assert gone.status_code == 404


EXERCISED = {
    "connection": {"zappwayBridge"},
    "rpc": {"listAgents", "listDatastores"},
    "webhook": {"newConversation"},
    "module": {"queryAgent", "upsertDocument", "queryDatastore", "deleteDocument",
               "watchNewConversation", "watchNewConversationInstant"},
}  # fmt: skip


def test_every_component_is_exercised_above(app):
    """The tests above cover every connection, RPC, webhook and module the app declares."""
    components = app.manifest["components"]
    declared = {kind: set(components.get(kind, {})) for kind in EXERCISED}
    assert declared == EXERCISED
