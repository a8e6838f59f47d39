"""The admin API: seed, reset, settings, clock, request log, and the CLI server."""

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest


def test_seed_returns_demo_set(demo):
    """Seeding creates an org, a key, two agents, a datastore and three conversations."""
    assert demo["key"].startswith("zw_live_")
    assert [a["visibility"] for a in demo["agents"]] == ["private", "public"]
    assert demo["datastores"][0]["_count"]["datasources"] == 2
    assert len(demo["conversations"]) == 3


def test_reset_clears_everything(client, admin, headers, demo):
    """Reset forgets keys, settings, faults and the request log."""
    admin.settings(order="desc")
    admin.add_fault("latency", seconds=0)
    client.get("/api/v1/me", headers=headers)
    admin.reset()
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert admin.settings()["order"] == "asc"
    assert admin.faults() == []
    assert [r["status"] for r in admin.requests()] == [401]


def test_request_log_masks_the_key(client, admin, headers, demo):
    """The log keeps a key hash and last four characters, never the key itself."""
    client.post("/api/v1/agents/@support/query", headers=headers, json={"query": "hi"})
    entry = admin.requests()[-1]
    key = demo["key"]
    assert key not in str(entry)
    assert entry["key_hash"] == hashlib.sha256(key.encode()).hexdigest()[:12]
    assert entry["key_last4"] == key[-4:]
    assert entry["body"] == {"query": "hi"}
    assert (entry["method"], entry["status"]) == ("POST", 200)


def test_request_log_since_and_clear(client, admin, headers):
    """since returns later entries only; DELETE empties the log; admin calls are not logged."""
    client.get("/api/v1/me", headers=headers)
    seq = admin.requests()[-1]["seq"]
    client.get("/api/v1/agents", headers=headers)
    assert [r["path"] for r in admin.requests(since=seq)] == ["/api/v1/agents"]
    admin.clear_requests()
    assert admin.requests() == []


def test_clock_advance_and_set(admin):
    """The clock can be set and advanced."""
    assert admin.set_clock(1_700_000_000) == pytest.approx(1_700_000_000, abs=1)
    assert admin.advance_clock(60) == pytest.approx(1_700_000_060, abs=1)


def test_unknown_setting_is_400(client):
    """Unknown settings and bad values are rejected."""
    assert client.post("/__admin/settings", json={"nope": 1}).status_code == 400
    assert client.post("/__admin/settings", json={"order": "up"}).status_code == 400


def test_admin_errors_for_unknown_parents(client):
    """Creating a key for an unknown org answers 404."""
    assert client.post("/__admin/keys", json={"org_id": "cnope"}).status_code == 404


def test_custom_key_value(client, admin, demo):
    """A key value can be chosen by the test."""
    admin.create_key(demo["org"]["id"], key="fixed-test-key")
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer fixed-test-key"})
    assert response.status_code == 200


def test_touch_moves_updated_at(admin, demo):
    """Touching a conversation adds a message and moves updatedAt."""
    conv = demo["conversations"][0]
    touched = admin.touch_conversation(conv["id"], at=1_900_000_000)
    assert touched["updatedAt"] > conv["updatedAt"]


@pytest.mark.slow
def test_cli_serves_over_http():
    """python -m sim prints its URL, serves the demo key, and answers /me."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim", "--port", "0", "--seed-demo"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        key = proc.stdout.readline().split(": ", 1)[1].strip()
        url = proc.stdout.readline().split(" on ", 1)[1].strip()
        response = httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert response.json()["data"]["name"] == "Demo Org"
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stdout.close()


def test_documents_of_a_datastore_with_their_text(client, admin, headers, demo):
    """The admin listing shows each document's external id and full text; unknown is 404."""
    datastore = demo["datastores"][0]["id"]
    before = len(admin.documents(datastore))
    upsert = {"documents": [{"id": "ext-1", "name": "One", "text": "first text"}]}
    assert client.post(
        f"/api/v1/datastores/{datastore}/upsert", headers=headers, json=upsert
    ).is_success
    docs = admin.documents(datastore)
    assert len(docs) == before + 1
    assert (docs[-1]["external_id"], docs[-1]["text"]) == ("ext-1", "first text")
    with pytest.raises(httpx.HTTPStatusError) as missing:
        admin.documents("no-such-datastore")
    assert missing.value.response.status_code == 404
