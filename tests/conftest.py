"""Shared fixtures: a real simulator, a real database, the bridge app built from a settings dict.

Tier 1 runs the simulator in-process through `httpx.WSGITransport`; tier 2 serves it on a real
socket (`sim_server`). PostgreSQL and Redis fixtures skip only when those servers are absent.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

import sim
from bridge import create_app
from bridge.console.activity import ActivityLog
from bridge.console.signin import SignInLimiter
from bridge.console.tasks import ConsoleTasks
from bridge.infra import storage
from bridge.infra.queue import WorkerHeartbeat
from bridge.runs.tasks import RunTasks
from bridge.runtime import Runtime
from bridge.sync.tasks import SyncTasks
from bridge.web.context import service_of
from sim.testing import SimAdmin, serve_in_thread

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_BASE = "redis://127.0.0.1:6379"
ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"
TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def runtime_of(app: Flask) -> Runtime:
    """The app's shared services (database, secret box, ZappWay pool...)."""
    return service_of(app, Runtime)


def housekeeping(app: Flask) -> None:
    """Run every feature's upkeep now, as the worker's periodic tasks would."""
    service_of(app, WorkerHeartbeat).task()
    service_of(app, RunTasks).housekeeping()
    service_of(app, SyncTasks).housekeeping()
    service_of(app, ConsoleTasks).housekeeping()


def close_app(app: Flask) -> None:
    """Stop what an app started (its activity writer, its sign-in limiter) and its pools."""
    service_of(app, ActivityLog).close()
    service_of(app, SignInLimiter).close()
    runtime_of(app).close()


def _port_open(port: int) -> bool:
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def sim_app() -> Flask:
    return sim.create_app({"profile": "documented", "seed": 1})


@pytest.fixture
def sim_transport(sim_app: Flask) -> httpx.WSGITransport:
    return httpx.WSGITransport(app=sim_app)


@pytest.fixture
def sim_admin(sim_transport: httpx.WSGITransport) -> Iterator[SimAdmin]:
    with httpx.Client(transport=sim_transport, base_url="http://sim") as http:
        yield SimAdmin(http)


@pytest.fixture
def seeded(sim_admin: SimAdmin) -> dict[str, Any]:
    """A demo organization with a key, agents, a datastore and conversations."""
    return sim_admin.seed()


@pytest.fixture
def sim_server(sim_app: Flask) -> Iterator[str]:
    """The same simulator on a real socket; yields its base URL."""
    with serve_in_thread(sim_app) as base_url:
        yield base_url


@pytest.fixture
def base_settings(tmp_path: Path) -> dict[str, Any]:
    return {
        "secret_key": TEST_SECRET,
        "admin_token": ADMIN_TOKEN,
        "var_dir": tmp_path / "var",
        "database_url": f"sqlite:///{tmp_path / 'bridge.sqlite3'}",
        "upstream_base_url": "http://sim/api/v1",
        "upstream_max_retries": 2,
        "upstream_rate_wait_s": 2.0,
        "huey_immediate": True,
    }


AppFactory = Callable[..., Flask]


@pytest.fixture
def pg_schemas() -> Iterator[list[str]]:
    """PostgreSQL schemas `pg_url` made for this test, dropped when the test's apps are closed.

    `make_app` asks for this fixture, so it is set up before any app and torn down after all
    of them: a test that asks for `pg_url` after `make_app` no longer drops its schema under
    apps still running (their activity log's last flush failed into the log)."""
    schemas: list[str] = []
    yield schemas
    if not schemas:
        return
    import sqlalchemy as sa

    admin_engine = sa.create_engine(PG_BASE)
    try:
        with admin_engine.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin_engine.dispose()


@pytest.fixture
def make_app(
    base_settings: dict[str, Any], sim_transport: httpx.WSGITransport, pg_schemas: list[str]
) -> Iterator[AppFactory]:
    """Build migrated bridge apps; keyword overrides replace settings fields."""
    built: list[Flask] = []

    def factory(transport: httpx.BaseTransport | None = sim_transport, **overrides: Any) -> Flask:
        app = create_app({**base_settings, **overrides}, upstream_transport=transport)
        storage.migrate(runtime_of(app).engine)
        built.append(app)
        return app

    yield factory
    for app in built:
        close_app(app)


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def connection(client: FlaskClient, seeded: dict[str, Any]) -> dict[str, Any]:
    """A connection registered with the seeded key; includes its one-time token."""
    response = client.post("/v1/connections", json={"api_key": seeded["key"], "label": "Tests"})
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["sqlite", "postgres"])
def app_database(request) -> dict[str, str]:
    """`make_app`'s database, for a test run on both: the SQLite default, or PostgreSQL
    (skipped when absent)."""
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("pg_url")}


@pytest.fixture
def pg_url(pg_schemas: list[str]) -> str:
    """A private schema in the local PostgreSQL `test` database (dropped by `pg_schemas`);
    skipped when absent."""
    if not _port_open(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin_engine = sa.create_engine(PG_BASE)
    try:
        with admin_engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    finally:
        admin_engine.dispose()
    pg_schemas.append(schema)
    return f"{PG_BASE}?options=-csearch_path%3D{schema}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database emptied before and after the test; skipped when absent."""
    if not _port_open(6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    import redis

    # Parallel checkouts on one machine pick different databases (BRIDGE_TEST_REDIS_DB).
    url = f"{REDIS_BASE}/{os.environ.get('BRIDGE_TEST_REDIS_DB', '9')}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def resolver(monkeypatch) -> Callable[[dict[str, list[str]]], None]:
    """Patch the system resolver (not our code): the given names answer the given addresses,
    so SSRF checks of made-up names run without any DNS traffic."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            return [
                (
                    socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (ip, port, 0, 0) if ":" in ip else (ip, port),
                )
                for ip in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)

    def answer(table: dict[str, list[str]]) -> None:
        answers.clear()
        answers.update(table)

    return answer


def random_key() -> str:
    return "zw_live_" + secrets.token_hex(16)
