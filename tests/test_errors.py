"""Every error the bridge raises carries its own status, and the web layer renders each one.

Like httpx's test of its exception mapping: the test walks every subclass of `BridgeError` in the
code base (so a new one cannot be forgotten), builds one, renders it through the app's one error
handler, and checks the status, the envelope and the headers platforms act on.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from marshmallow import ValidationError

import bridge
from bridge.connections.key_health import KeyOnHold
from bridge.connections.service import ConnectionAuthError, InvalidApiKey
from bridge.console.signin import SignInRefused, TooManySignIns
from bridge.infra.errors import MAX_MESSAGE, BridgeError, ClientError, as_bridge_error
from bridge.infra.jsontext import API_DEPTH, JsonTooDeep, NotUnicode
from bridge.runs.idempotency import IdempotencyConflict
from bridge.runs.jobs import ActionStillRunning
from bridge.sync.ingest import IngestRejected
from bridge.upstream.errors import (
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamResponseError,
)
from bridge.upstream.gate import CallWithdrawn, NeverSent
from bridge.web.errors import render

# Errors whose constructor needs arguments: how to build a typical one.
EXAMPLES: dict[type[BridgeError], Callable[[], BridgeError]] = {
    ClientError: lambda: ClientError(410, "source_deleted", "This inbound URL was deleted"),
    ConnectionAuthError: lambda: ConnectionAuthError("unknown_credentials", "Unknown token"),
    InvalidApiKey: lambda: InvalidApiKey("api_key must not be empty"),
    IdempotencyConflict: lambda: IdempotencyConflict(409, "idempotency_in_progress", "running"),
    IngestRejected: lambda: IngestRejected(401, "bad-signature"),
    ActionStillRunning: lambda: ActionStillRunning("job_0123"),
    UpstreamRateLimited: lambda: UpstreamRateLimited(retry_after=2.5),
    UpstreamRejected: lambda: UpstreamRejected("ZappWay rejected it", fields=("query",)),
    SignInRefused: lambda: SignInRefused("Unknown connection token"),
    TooManySignIns: lambda: TooManySignIns(retry_after=12.5),
    JsonTooDeep: lambda: JsonTooDeep(API_DEPTH),
    NotUnicode: lambda: NotUnicode("documents.0.title"),
    KeyOnHold: lambda: KeyOnHold(datetime(2026, 12, 6, 9, 30, tzinfo=UTC)),
    NeverSent: lambda: NeverSent(2.0),
    CallWithdrawn: lambda: CallWithdrawn(2.0),
}


def _subclasses(cls: type[BridgeError]) -> Iterator[type[BridgeError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _every_error() -> list[type[BridgeError]]:
    for module in pkgutil.walk_packages(bridge.__path__, "bridge."):
        importlib.import_module(module.name)
    return sorted({BridgeError, *_subclasses(BridgeError)}, key=lambda c: c.__qualname__)


def _build(cls: type[BridgeError]) -> BridgeError:
    factory = EXAMPLES.get(cls)
    if factory is not None:
        return factory()
    if issubclass(cls, UpstreamResponseError):
        return cls(upstream_status=cls.status_code)
    return cls()


@pytest.mark.parametrize("cls", _every_error(), ids=lambda c: c.__qualname__)
def test_every_error_renders_with_its_own_status(cls, app):
    """Each error renders as its own status, the `{error: {code, message}}` envelope, a
    message under 250 characters, and the headers its status calls for."""
    error = _build(cls)
    with app.test_request_context():
        response = render(error)
    body: dict[str, Any] = response.get_json()
    assert response.status_code == error.status_code
    assert 400 <= error.status_code <= 599
    assert body["error"]["code"] == error.code
    assert error.code and error.code == error.code.strip()
    assert 0 < len(body["error"]["message"]) <= MAX_MESSAGE
    if error.status_code in (409, 429):
        assert int(response.headers["Retry-After"]) >= 1
    if isinstance(error, ConnectionAuthError):
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_walk_finds_the_domain_errors():
    """The walk reaches errors defined in every layer, not just the base module."""
    names = {cls.__name__ for cls in _every_error()}
    assert {"UpstreamTimeout", "DocumentBusy", "DecryptionError", "HookError",
            "IngestRejected", "ConnectionRevoked", "MalformedBody"} <= names  # fmt: skip


def test_anything_else_is_a_bare_500(app):
    """An exception that is not ours renders as 500 with no detail of it."""
    with app.test_request_context():
        response = render(KeyError("secret-looking detail"))
    assert response.status_code == 500
    assert response.get_json() == {
        "error": {"code": "internal_error", "message": "Internal error; it has been logged"}
    }


def test_validation_errors_name_their_fields():
    """marshmallow's errors become a 422 naming every refused field, nested ones dotted."""
    error = as_bridge_error(ValidationError({"query": ["Missing"], "contact": {"email": ["Bad"]}}))
    assert error.status_code == 422
    assert error.body()["error"]["fields"] == ["query", "contact.email"]


def test_validation_errors_name_list_items_and_whole_objects():
    """A list's item is named by its index, and a nested object refused as a whole by its own
    name (not marshmallow's `_schema`); the message quotes no Python structure."""
    messages = {
        "documents": {0: {"_schema": ["must be a JSON object"]}, 2: {"id": ["repeats"]}},
        "contact": {"_schema": ["must be a JSON object"]},
    }
    error = as_bridge_error(ValidationError(messages))
    assert error.body()["error"]["fields"] == ["documents.0", "documents.2.id", "contact"]
    assert error.message == ("Invalid input: documents.0: must be a JSON object; "
                             "documents.2.id: repeats; contact: must be a JSON object")  # fmt: skip


def _end_backends(name: str) -> None:
    """End the PostgreSQL backends whose application_name is `name` (this test's only), as a
    restart or a failover does."""
    import sqlalchemy as sa

    from tests.conftest import PG_BASE

    admin = sa.create_engine(PG_BASE)
    try:
        with admin.begin() as db:
            ended = db.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = :name"
                ),
                {"name": name},
            ).scalar()
    finally:
        admin.dispose()
    assert ended and ended >= 1


def _cut_app(make_app, pg_url, seeded, **settings):
    """An app on PostgreSQL under its own application_name, a connection's token, and that
    name."""
    import uuid

    name = f"zwb_cut_{uuid.uuid4().hex[:10]}"
    app = make_app(database_url=f"{pg_url}&application_name={name}", **settings)
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    return client, {"Authorization": f"Bearer {token}"}, name


def test_a_read_that_meets_a_cut_database_connection_is_made_again(make_app, pg_url, seeded):
    """PostgreSQL ends the bridge's pooled connections: the next request's authenticating read
    meets a dead one, and is made once more on a fresh connection, so the request succeeds."""
    client, me, name = _cut_app(make_app, pg_url, seeded)
    assert client.get("/v1/me", headers=me).status_code == 200
    _end_backends(name)
    answer = client.get("/v1/me", headers=me)
    assert answer.status_code == 200, answer.get_json()


def test_a_write_that_meets_a_cut_database_connection_is_a_503_then_recovers(
    make_app, pg_url, redis_url, seeded
):
    """A write is not made again (it may have been applied): the request that meets the dead
    connection answers 503 `storage_unavailable` with Retry-After (it used to be a 500), and
    the next one succeeds on a fresh connection. (The rate budget is on Redis here, so the
    write is the request's only use of PostgreSQL.)"""
    client, me, name = _cut_app(make_app, pg_url, seeded, redis_url=redis_url)
    assert client.get("/v1/me", headers=me).status_code == 200
    _end_backends(name)
    cut = client.post("/v1/connections", json={"api_key": seeded["key"]})
    assert cut.status_code == 503, cut.get_json()
    assert cut.get_json()["error"]["code"] == "storage_unavailable"
    assert cut.headers["Retry-After"] == "1"
    assert client.post("/v1/connections", json={"api_key": seeded["key"]}).status_code == 201


def test_a_cut_connection_of_the_postgres_rate_budget_is_retried_not_a_500(
    make_app, pg_url, seeded
):
    """Without Redis the key's budget is kept in PostgreSQL, on a pool of its own. When the
    server ends those connections too, the budget's check fails as a store that cannot be
    reached (nothing was sent: the client retries it on a fresh connection), not with the
    driver's error unhandled (a 500)."""
    client, me, name = _cut_app(make_app, pg_url, seeded)
    agent = seeded["agents"][0]["id"]
    body = {"agent_id": agent, "query": "Hello"}
    assert client.post("/v1/actions/query_agent", json=body, headers=me).status_code == 200
    _end_backends(name)
    answer = client.post("/v1/actions/query_agent", json=body, headers=me)
    assert answer.status_code == 200, answer.get_json()
