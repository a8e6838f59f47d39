"""Demo companion process (run by `make demo` through Procfile.demo).

Waits for the simulator and the bridge, seeds the simulator, registers a demo connection through
the bridge's public API, prints ready-to-paste curl commands, then idles so honcho keeps the
other processes running until Ctrl-C.
"""

from __future__ import annotations

import os
import sys
import time

import httpx

SIM = f"http://127.0.0.1:{os.environ.get('SIM_PORT', '8099')}"  # make demo sets SIM_PORT
BRIDGE = os.environ.get("BRIDGE_URL", "http://127.0.0.1:8000")


def wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    sys.exit(f"demo: {url} did not come up within {timeout:.0f} s")


def main() -> None:
    wait_for(f"{SIM}/__admin/settings")
    wait_for(f"{BRIDGE}/healthz")
    seeded = httpx.post(f"{SIM}/__admin/seed", json={}, timeout=10).json()
    created = httpx.post(
        f"{BRIDGE}/v1/connections",
        json={"api_key": seeded["key"], "label": "Demo connection"},
        timeout=30,
    )
    created.raise_for_status()
    token = created.json()["token"]
    agent = seeded["agents"][0]["id"]
    datastore = seeded["datastores"][0]["id"]
    auth = f'-H "Authorization: Bearer {token}"'
    json_auth = f"{auth} -H 'Content-Type: application/json'"
    query = f'{{"agent_id": "{agent}", "query": "What is your return policy?"}}'
    upsert = (
        f'{{"datastore_id": "{datastore}", '
        '"document": {"id": "faq-1", "title": "Shipping", "text": "We ship worldwide."}}'
    )
    print(
        f"""
=== ZappWay Bridge demo ===
Simulated ZappWay at {SIM} (organization "{seeded["org"]["name"]}"), bridge at {BRIDGE}.
A demo connection was created; its token (shown once) is used below.

  curl -s {BRIDGE}/healthz
  curl -s {BRIDGE}/readyz
  curl -s {auth} {BRIDGE}/v1/me
  curl -s {auth} "{BRIDGE}/v1/me?verify=1"
  curl -s {auth} "{BRIDGE}/v1/agents?format=options"
  curl -s -X POST {json_auth} -d '{query}' {BRIDGE}/v1/actions/query_agent
  curl -s -X POST {json_auth} -d '{upsert}' {BRIDGE}/v1/actions/upsert_document
  curl -s {auth} "{BRIDGE}/v1/triggers/new_conversation?agent_id={agent}&limit=3"
  curl -s {SIM}/__admin/requests          # what reached the (simulated) upstream

Press Ctrl-C to stop everything.
""",
        flush=True,
    )
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
