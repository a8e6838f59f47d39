"""The generated n8n package in n8n 2.8.4, headless, against a live bridge (`make test-n8n`).

Opt-in: n8n's install is about 2.3 GB and 4 minutes (`tests/integrations/n8n/`, lockfile
committed), so these run only with BRIDGE_TEST_N8N=1 (set by `make test-n8n`) and skip when n8n
is not installed. The package is packed and installed into n8n's community-node folder
(`~/.n8n/nodes`) the way n8n's own "Install community node" does, then:
an action workflow runs with `n8n execute`; the dropdown's loadOptions answers through n8n's
REST API; the trigger workflow, published, subscribes on start, receives a signed delivery
(a forged one gets 401) and unsubscribes when deactivated.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integrations.live import INTEGRATIONS, LiveBridge, live_bridge, need_node

HARNESS = Path(__file__).resolve().parent / "n8n"
N8N = HARNESS / "node_modules" / ".bin" / "n8n"
PACKAGE = "n8n-nodes-zappway-bridge"
EXTRA_AGENTS = 104
OWNER = {"email": "owner@example.com", "firstName": "Test", "lastName": "Owner",
         "password": "Bridge-Test-0wner"}  # fmt: skip
QUIET = {
    "N8N_DIAGNOSTICS_ENABLED": "false", "N8N_DIAGNOSTICS_CONFIG_FRONTEND": "",
    "N8N_DIAGNOSTICS_CONFIG_BACKEND": "", "EXTERNAL_FRONTEND_HOOKS_URLS": "",
    "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
    "N8N_VERSION_NOTIFICATIONS_WHATS_NEW_ENABLED": "false", "N8N_TEMPLATES_ENABLED": "false",
    "N8N_HIRING_BANNER_ENABLED": "false", "N8N_PERSONALIZATION_ENABLED": "false",
    "N8N_AI_ENABLED": "false", "N8N_LICENSE_AUTO_RENEW_ENABLED": "false",
    "N8N_LICENSE_DETACH_FLOATING_ON_SHUTDOWN": "false", "N8N_DYNAMIC_BANNERS_ENABLED": "false",
    "N8N_PUBLIC_API_SWAGGERUI_DISABLED": "true", "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
    "N8N_BLOCK_ENV_ACCESS_IN_NODE": "true", "N8N_SECURE_COOKIE": "false",
    # Community packages on: that is where n8n loads installed community nodes from. Nothing
    # is downloaded at run time (the package is already installed, reinstall is off).
    "N8N_COMMUNITY_PACKAGES_ENABLED": "true", "N8N_REINSTALL_MISSING_PACKAGES": "false",
    "N8N_LISTEN_ADDRESS": "127.0.0.1", "N8N_HOST": "127.0.0.1",
}  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("BRIDGE_TEST_N8N") != "1", reason="opt-in: run `make test-n8n`"
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def node_id(name: str) -> str:
    return f"{PACKAGE}.{name}"


class N8n:
    """n8n's CLI with its own user folder, ports and environment."""

    def __init__(self, home: Path) -> None:
        node, _ = need_node()
        self.home = home
        self.port = free_port()
        self.env = {
            "PATH": f"{Path(node).parent}:/usr/bin:/bin",
            "HOME": str(home),
            "N8N_USER_FOLDER": str(home),
            "N8N_PORT": str(self.port),
            "N8N_RUNNERS_BROKER_PORT": str(free_port()),
            **QUIET,
        }

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(N8N), *args], env=self.env, cwd=self.home, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def must(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, (
            f"n8n {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
        return done.stdout

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def install_package(home: Path) -> None:
    """Pack the generated package and install the tarball where n8n keeps community nodes."""
    _, npm = need_node()
    packed = subprocess.run(
        [npm, "pack", str(INTEGRATIONS / "n8n"), "--pack-destination", str(home)],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    nodes = home / ".n8n" / "nodes"
    nodes.mkdir(parents=True)
    (nodes / "package.json").write_text('{"name": "installed-nodes", "private": true}\n')
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--legacy-peer-deps", "--offline",
         str(home / packed)],
        cwd=nodes, capture_output=True, text=True, check=True,
    )  # fmt: skip


def workflow(
    wf_id: str, name: str, nodes: list[dict[str, Any]], links: list[tuple[str, str]]
) -> dict[str, Any]:
    connections = {a: {"main": [[{"node": b, "type": "main", "index": 0}]]} for a, b in links}
    for index, node in enumerate(nodes):
        node.setdefault("id", f"{wf_id}-{index}")
        node.setdefault("position", [index * 250, 0])
        node.setdefault("typeVersion", 1)
    return {"id": wf_id, "name": name, "active": False, "nodes": nodes,
            "connections": connections, "settings": {}}  # fmt: skip


CREDENTIAL = {"zappWayBridgeApi": {"id": "zwbCredential01", "name": "ZappWay Bridge"}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[dict[str, Any]]:
    if not N8N.exists():
        pytest.skip("n8n is not installed: `make test-n8n` installs it from its lockfile")
    home = tmp_path_factory.mktemp("n8n-home")
    with live_bridge(tmp_path_factory.mktemp("n8n-bridge")) as bridge:
        for number in range(EXTRA_AGENTS):
            bridge.sim.create_agent(bridge.seeded["org"]["id"], f"Agent {number:03d}")
        started = time.monotonic()
        install_package(home)
        n8n = N8n(home)
        credentials = [{**CREDENTIAL["zappWayBridgeApi"], "type": "zappWayBridgeApi",
                        "data": {"baseUrl": bridge.url, "token": bridge.token}}]  # fmt: skip
        (home / "credentials.json").write_text(json.dumps(credentials))
        n8n.must("import:credentials", f"--input={home / 'credentials.json'}")
        yield {
            "bridge": bridge,
            "n8n": n8n,
            "home": home,
            "timings": {"setup_s": time.monotonic() - started},
        }


def test_action_workflow_runs_headless(setup):
    """A workflow with the node's Query Agent and Search Datastore operations runs in n8n."""
    bridge: LiveBridge = setup["bridge"]
    n8n: N8n = setup["n8n"]
    nodes = [
        {"name": "Start", "type": "n8n-nodes-base.manualTrigger", "parameters": {}},
        {"name": "Ask", "type": node_id("zappWayBridge"), "credentials": CREDENTIAL,
         "parameters": {"resource": "agent", "operation": "query_agent",
                        "agent_id": bridge.agent, "query": "What is your return policy?",
                        "additionalFields": {"contact_email": "ada@example.com"}}},
        {"name": "Store", "type": node_id("zappWayBridge"), "credentials": CREDENTIAL,
         "parameters": {"resource": "datastore", "operation": "upsert_document",
                        "datastore_id": bridge.datastore,
                        "additionalFields": {"document_id": "n8n-doc-1",
                                             "document_text": "={{ $json.answer }}"}}},
        {"name": "Search", "type": node_id("zappWayBridge"), "credentials": CREDENTIAL,
         "parameters": {"resource": "datastore", "operation": "query_datastore",
                        "datastore_id": bridge.datastore, "query": "return window",
                        "additionalFields": {"top_k": 2}}},
    ]  # fmt: skip
    flow = workflow("wfZwbActions01", "Bridge actions", nodes,
                    [("Start", "Ask"), ("Ask", "Store"), ("Store", "Search")])  # fmt: skip
    path = setup["home"] / "actions.json"
    path.write_text(json.dumps(flow))
    n8n.must("import:workflow", f"--input={path}")
    started = time.monotonic()
    out = n8n.must("execute", "--id=wfZwbActions01", "--rawOutput")
    setup["timings"]["execute_s"] = time.monotonic() - started
    run = json.loads(out[out.index("{") :])["data"]["resultData"]["runData"]
    answer = run["Ask"][0]["data"]["main"][0][0]["json"]
    stored = run["Store"][0]["data"]["main"][0][0]["json"]
    found = [item["json"] for item in run["Search"][0]["data"]["main"][0]]
    assert answer["status"] == "answered"
    assert stored["created"] == 1
    assert stored["documents"][0]["id"] == "n8n-doc-1"
    assert 1 <= len(found) <= 2
    assert found[0]["text"]


@pytest.fixture(scope="module")
def server(setup) -> Iterator[dict[str, Any]]:
    """n8n running with the trigger workflow published, and an owner logged in."""
    bridge: LiveBridge = setup["bridge"]
    n8n: N8n = setup["n8n"]
    nodes = [{"name": "New conversation", "type": node_id("zappWayBridgeTrigger"),
              "webhookId": "zwb-hook-test", "credentials": CREDENTIAL,
              "parameters": {"event": "new_conversation", "agent_id": bridge.agent}}]  # fmt: skip
    path = setup["home"] / "hook.json"
    path.write_text(json.dumps(workflow("wfZwbHook01", "Bridge hook", nodes, [])))
    n8n.must("import:workflow", f"--input={path}")
    n8n.must("publish:workflow", "--id=wfZwbHook01")
    log = (setup["home"] / "n8n.log").open("wb")
    process = subprocess.Popen(
        [str(N8N), "start"], env=n8n.env, cwd=setup["home"], stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    started = time.monotonic()
    try:
        hook = wait_for_hook(bridge, n8n, process, setup["home"])
        setup["timings"]["start_to_subscribed_s"] = time.monotonic() - started
        session = httpx.Client(base_url=n8n.url, headers={"browser-id": "bridge-tests"}, timeout=30)
        answer = session.post("/rest/owner/setup", json=OWNER)
        assert answer.status_code == 200, answer.text
        try:
            yield {"hook": hook, "session": session, "process": process}
        finally:
            session.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


def wait_for_hook(
    bridge: LiveBridge, n8n: N8n, process: subprocess.Popen[bytes], home: Path
) -> dict[str, Any]:
    """The hook n8n's activation made at the bridge, once it exists (n8n is up by then)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, (home / "n8n.log").read_text()[-3000:]
        hooks = httpx.get(f"{bridge.url}/v1/hooks", headers=bridge.headers()).json()
        mine = [h for h in hooks if h["state"] == "active" and f":{n8n.port}/" in h["target_url"]]
        if mine:
            return dict(mine[0])
        time.sleep(0.5)
    raise AssertionError("n8n never subscribed:\n" + (home / "n8n.log").read_text()[-3000:])


def test_trigger_subscribes_on_activation(setup, server):
    """Publishing the workflow made one hook for n8n's production webhook URL and the agent."""
    hook = server["hook"]
    assert hook["agent_id"] == setup["bridge"].agent
    assert hook["target_url"].endswith("/webhook/zwb-hook-test/webhook")


def test_dropdown_loads_every_page(setup, server):
    """The node's agent dropdown (loadOptions) lists all 106 agents, past the first page."""
    body = {
        "nodeTypeAndVersion": {"name": node_id("zappWayBridge"), "version": 1},
        "methodName": "getAgents",
        "path": "parameters.agent_id",
        "currentNodeParameters": {"resource": "agent", "operation": "query_agent"},
        "credentials": CREDENTIAL,
    }
    answer = server["session"].post("/rest/dynamic-node-parameters/options", json=body)
    assert answer.status_code == 200, answer.text
    options = answer.json()["data"]
    assert len(options) == EXTRA_AGENTS + 2
    assert {"name": "Support Agent", "value": setup["bridge"].agent} in options


def test_trigger_receives_a_signed_delivery_and_refuses_a_forged_one(setup, server):
    """A new conversation reaches the workflow (n8n answers 2xx once the signature verifies);
    a request without a valid signature gets 401."""
    bridge: LiveBridge = setup["bridge"]
    created = bridge.sim.create_conversation(
        bridge.agent, messages=[{"from": "human", "text": "Hello n8n"}]
    )
    hook_url = f"{bridge.url}/v1/hooks/{server['hook']['id']}"
    deadline = time.monotonic() + 30
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = httpx.get(hook_url, headers=bridge.headers()).json()
        if any(d["state"] == "delivered" for d in shown["deliveries"]):
            break
        time.sleep(0.3)
    delivered = [d for d in shown["deliveries"] if d["state"] == "delivered"]
    assert delivered, shown
    assert delivered[0]["attempts"][-1]["status"] == 200
    executions = server["session"].get(
        "/rest/executions", params={"filter": json.dumps({"workflowId": "wfZwbHook01"})}
    )
    assert executions.status_code == 200, executions.text
    assert executions.json()["data"]["count"] >= 1
    forged = httpx.post(server["hook"]["target_url"], json={"id": created["id"]},
                        headers={"webhook-id": "msg_x", "webhook-timestamp": str(int(time.time())),
                                 "webhook-signature": "v1,AAAA"})  # fmt: skip
    assert forged.status_code == 401


def test_trigger_unsubscribes_on_deactivation(setup, server):
    """Deactivating the workflow deletes its hook at the bridge."""
    bridge: LiveBridge = setup["bridge"]
    answer = server["session"].post("/rest/workflows/wfZwbHook01/deactivate", json={})
    assert answer.status_code == 200, answer.text
    gone = httpx.get(f"{bridge.url}/v1/hooks/{server['hook']['id']}", headers=bridge.headers())
    assert gone.status_code == 404
    print(json.dumps({"n8n_timings": setup["timings"]}))  # quoted in the closing note
