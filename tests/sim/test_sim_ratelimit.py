"""Per-key fixed-window rate limiting and the monthly quota."""

import pytest

WINDOW_START = 1_800_000_000  # a whole minute, so the window ends 60 s later


@pytest.fixture
def limited_key(admin, demo):
    admin.set_clock(WINDOW_START + 1)
    return admin.create_key(demo["org"]["id"], rate_limit=3)


def _me(client, key):
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})


def test_429_with_retry_after_past_the_limit(client, limited_key):
    """The request past the per-minute limit answers 429 with Retry-After to the window end."""
    statuses = [_me(client, limited_key).status_code for _ in range(3)]
    response = _me(client, limited_key)
    assert statuses == [200, 200, 200]
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "RATE_LIMITED"
    assert 58 <= int(response.headers["Retry-After"]) <= 59
    assert response.headers["X-RateLimit-Limit"] == "3"
    assert response.headers["X-RateLimit-Remaining"] == "0"


def test_window_resets_when_the_clock_moves(client, admin, limited_key):
    """Advancing the virtual clock past the window end lets requests through again."""
    for _ in range(4):
        _me(client, limited_key)
    admin.advance_clock(60)
    assert _me(client, limited_key).status_code == 200


def test_limit_is_per_key(client, admin, demo, limited_key):
    """Another key of the same org has its own window."""
    for _ in range(4):
        _me(client, limited_key)
    assert _me(client, demo["key"]).status_code == 200


def test_org_plan_sets_the_default_limit(client, admin):
    """A custom-plan org's keys get the plan's per-minute figure."""
    admin.set_clock(WINDOW_START + 1)
    org = admin.create_org("Tiny", plan=2)
    key = admin.create_key(org["id"])
    assert [_me(client, key).status_code for _ in range(3)] == [200, 200, 429]


def test_rate_limited_requests_are_logged(client, admin, limited_key):
    """Rejected requests still appear in the request log with status 429."""
    for _ in range(4):
        _me(client, limited_key)
    assert [entry["status"] for entry in admin.requests()][-2:] == [200, 429]


def test_legacy_limiter_off_by_default(client, legacy, limited_key):
    """The legacy profile does not rate limit unless switched on."""
    key = {"Authorization": f"Bearer {limited_key}"}
    assert {client.get("/api/me", headers=key).status_code for _ in range(5)} == {200}


def test_legacy_limiter_has_no_retry_after(client, legacy, limited_key):
    """Switched on, the legacy limiter answers {"error": "RATE_LIMIT"} without Retry-After."""
    legacy.settings(rate_limit_enabled=True)
    key = {"Authorization": f"Bearer {limited_key}"}
    responses = [client.get("/api/me", headers=key) for _ in range(4)]
    assert responses[-1].status_code == 429
    assert responses[-1].json() == {"error": "RATE_LIMIT"}
    assert "Retry-After" not in responses[-1].headers


def test_quota_exhausted_is_402(client, admin, headers, agent_id):
    """With the quota on, queries past the monthly quota answer 402 USAGE_LIMIT."""
    admin.settings(quota_enabled=True, quota_per_month=5)
    path = f"/api/v1/agents/{agent_id}/query"
    first = client.post(path, headers=headers, json={"query": "hello"})  # gpt_4o weighs 5
    second = client.post(path, headers=headers, json={"query": "hello"})
    assert first.status_code == 200
    assert second.status_code == 402
    assert second.json()["error"]["code"] == "USAGE_LIMIT"


def test_quota_in_legacy_has_bare_code(client, admin, headers, agent_id, legacy):
    """Legacy 402 answers {"error": "USAGE_LIMIT"}."""
    admin.settings(quota_enabled=True, quota_per_month=0)
    response = client.post(f"/api/agents/{agent_id}/query", headers=headers, json={"query": "x"})
    assert response.status_code == 402
    assert response.json() == {"error": "USAGE_LIMIT"}


def test_limit_holds_under_concurrency(served, admin, demo):
    """Concurrent requests over the threaded server never exceed the window's limit."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    admin.set_clock(WINDOW_START + 1)
    key = admin.create_key(demo["org"]["id"], rate_limit=10)
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=served, timeout=5) as http, ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda _: http.get("/api/v1/me", headers=headers).status_code, range(24))
        )
    assert statuses.count(200) == 10
    assert statuses.count(429) == 14


def test_injected_clock_drives_timestamps():
    """A clock passed in config is what the simulator stamps records with."""
    import httpx

    from sim import create_app
    from sim.testing import SimAdmin

    class Frozen:
        def now(self):
            return 1_750_000_000.0

    app = create_app({"clock": Frozen()})
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://s") as c:
        org = SimAdmin(c).create_org("Frozen")
        agent = SimAdmin(c).create_agent(org["id"], "A")
    assert agent["createdAt"] == "2025-06-15T15:06:40.000Z"
