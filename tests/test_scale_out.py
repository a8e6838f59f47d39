"""N web processes + M workers on shared PostgreSQL and Redis: no state lives in one process."""

from __future__ import annotations

from tests.conftest import bearer


def test_lifecycle_across_two_apps_on_postgres_and_redis(make_app, pg_url, redis_url, seeded):
    """A connection made on one app authenticates on another; revocation there is immediate."""
    first = make_app(database_url=pg_url, redis_url=redis_url, huey_immediate=False)
    second = make_app(database_url=pg_url, redis_url=redis_url, huey_immediate=False)
    created = first.test_client().post("/v1/connections", json={"api_key": seeded["key"]})
    token = created.get_json()["token"]
    assert second.test_client().get("/v1/me", headers=bearer(token)).status_code == 200
    rotated = second.test_client().post("/v1/me/rotate-token", headers=bearer(token))
    new_token = rotated.get_json()["token"]
    assert first.test_client().get("/v1/me", headers=bearer(token)).status_code == 401
    assert first.test_client().delete("/v1/me", headers=bearer(new_token)).status_code == 204
    assert second.test_client().get("/v1/me", headers=bearer(new_token)).status_code == 401
    for app in (first, second):
        assert app.test_client().get("/readyz").status_code == 200
