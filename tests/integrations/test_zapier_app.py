"""The generated Zapier app, run by zapier-platform-core 19.1.0 against a live bridge.

`make test` installs the app from its lockfile (`npm ci`, once per lockfile), then one node
process (`tests/integrations/zapier/run_app_tests.js`) validates it with Zapier's schema and
runs each operation through core's own handler; each step is checked here by name.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.live import INTEGRATIONS, live_bridge, need_node, npm_ci

HARNESS = Path(__file__).resolve().parent / "zapier" / "run_app_tests.js"
EXTRA_AGENTS = 104  # with the 2 seeded agents: a full first dropdown page of 100, then 6
SLOW_S = 3.0  # ZappWay's answer time in the long-answer step, past the bridge's 1 s deadline


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> dict[str, dict[str, Any]]:
    node, _ = need_node()
    npm_ci(INTEGRATIONS / "zapier")
    with live_bridge(tmp_path_factory.mktemp("zapier"), action_deadline_s=1.0) as bridge:
        org = bridge.seeded["org"]["id"]
        for number in range(EXTRA_AGENTS):
            bridge.sim.create_agent(org, f"Agent {number:03d}")
        config = {
            "bridge": bridge.url,
            "token": bridge.token,
            "sim": bridge.sim_url,
            "agent": bridge.agent,
            "datastore": bridge.datastore,
            "expectAgents": EXTRA_AGENTS + 2,
            "slowSeconds": SLOW_S,
        }
        env = {
            "PATH": str(Path(node).parent),
            "NODE_ENV": "test",
            "LOGGING_ENDPOINT": "http://127.0.0.1:9/",
        }
        run = subprocess.run(
            [node, str(HARNESS), json.dumps(config)],
            capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines and lines[-1]["step"] == "done", run.stdout[-2000:] + run.stderr[-2000:]
    return {line["step"]: line for line in lines}


STEPS = [
    ("validate", "validateApp finds no problem in the app definition"),
    ("auth_test_and_label", "the auth test calls GET /v1/me and the connection label reads it"),
    ("auth_rejects_a_bad_token", "a bad token is an ExpiredAuthError (reconnect, no refresh)"),
    ("polling_trigger", "the polling trigger returns the agent's conversations; samples <= 3"),
    ("dropdown_pages", "the agents dropdown's second page (meta.page 1) continues the first"),
    ("hook_subscribe", "performSubscribe creates a hook for Zapier's target URL"),
    ("hook_perform_list", "performList returns samples with agent_id sent"),
    ("hook_delivery_verified", "a real delivery verifies and becomes one item; a forged one halts"),
    ("hook_unsubscribe", "performUnsubscribe deletes the hook; again, it finds it gone: fine"),
    ("create_upsert_document", "upsert_document sends one document or a batch (line items)"),
    ("search_query_datastore", "query_datastore returns passages"),
    ("create_delete_document", "delete_document deletes by the id it was upserted with"),
    ("create_query_agent_inline", "the editor's sample run of query_agent answers inline"),
    ("create_query_agent_long_via_perform_resume", "a slow answer comes back via performResume"),
    ("error_422_halts", "a 422 is a HaltedError carrying the bridge's message"),
    ("error_429_throttles_with_retry_after", "a 429 is a ThrottledError with a delay"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "behaviour"), STEPS, ids=[name for name, _ in STEPS])
def test_zapier_app_step(steps, name, behaviour):
    """Each step of the Zapier app suite passes (the behaviour is in STEPS)."""
    assert name in steps, f"step {name} did not run: {behaviour}"
    assert steps[name]["ok"], f"{behaviour}: {steps[name]['detail']}"
