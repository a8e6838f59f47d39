"""Shared pieces of the action tests: per-profile bridges, action calls, simulator look-ups.

Plain functions only (fixtures stay in each test module): every helper goes through the bridge's
HTTP routes or reads the simulator's state; nothing here stands in for bridge code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from bridge.infra.models import DocumentMapping, Job
from sim.state import EXTENSION
from tests.conftest import bearer, runtime_of

PREFIX = {"documented": "http://sim/api/v1", "legacy": "http://sim/api"}
PROFILES = ("documented", "legacy")


@dataclass(frozen=True)
class Bridge:
    """A bridge app talking one upstream profile, with a connection registered on it."""

    app: Flask
    client: FlaskClient
    token: str
    signing_secret: str
    connection_id: str
    profile: str

    def act(self, key: str, body: dict[str, Any], **headers: str) -> TestResponse:
        return act(self.client, self.token, key, body, **headers)

    def get(self, path: str, **params: Any) -> TestResponse:
        return self.client.get(path, query_string=params, headers=bearer(self.token))


def build(make_app: Callable[..., Flask], key: str, profile: str, **overrides: Any) -> Bridge:
    """Build a bridge for `profile` (the simulator must already be switched) and connect `key`."""
    app = make_app(upstream_profile=profile, upstream_base_url=PREFIX[profile], **overrides)
    client = app.test_client()
    created = connect(client, key)
    return Bridge(app, client, created["token"], created["signing_secret"], created["id"], profile)


def connect(client: FlaskClient, key: str) -> dict[str, Any]:
    response = client.post("/v1/connections", json={"api_key": key, "label": "Actions"})
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def act(
    client: FlaskClient, token: str, key: str, body: dict[str, Any], **headers: str
) -> TestResponse:
    """POST one action the way a platform does."""
    return client.post(f"/v1/actions/{key}", json=body, headers={**bearer(token), **headers})


def calls(sim_admin: Any, fragment: str, method: str | None = None) -> list[dict[str, Any]]:
    """Upstream requests the simulator logged whose path contains `fragment`."""
    return [
        r
        for r in sim_admin.requests()
        if fragment in r["path"] and (method is None or r["method"] == method)
    ]


def sim_documents(sim_app: Flask, datastore_id: str) -> list[Any]:
    """The simulator's documents of one datastore (its state, read under its lock)."""
    store = sim_app.extensions[EXTENSION]
    with store.lock:
        return list(store.documents_of(datastore_id))


def delete_upstream(sim_app: Flask, document_id: str) -> None:
    """Remove a document in the simulator, as a user would in ZappWay's dashboard (no API call)."""
    store = sim_app.extensions[EXTENSION]
    with store.lock:
        del store.documents[document_id]


def mapping_rows(app: Flask, datastore_id: str) -> list[DocumentMapping]:
    with runtime_of(app).sessions() as session:
        rows = session.scalars(
            select(DocumentMapping).where(DocumentMapping.datastore_id == datastore_id)
        )
        return list(rows)


def job_row(app: Flask, job_id: str) -> Job:
    with runtime_of(app).sessions() as session:
        row: Job | None = session.get(Job, job_id)
    assert row is not None, f"no job {job_id}"
    return row


def wait_for_job(client: FlaskClient, token: str, job_id: str, status: str) -> dict[str, Any]:
    """Poll `GET /v1/jobs/<id>` (as Make does) until the job has `status`; return it."""

    def check() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=bearer(token)).get_json()
        return body if body.get("status") == status else None

    found: dict[str, Any] = wait_until(check)
    return found


def wait_until(check: Callable[[], Any], timeout: float = 20.0, step: float = 0.05) -> Any:
    """Return the first truthy value of `check()`, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(step)


def at_once(count: int, call: Callable[[int], Any], timeout: float = 30.0) -> list[Any]:
    """Run `call(i)` in `count` threads released together; return results in index order.

    An exception in a thread is re-raised here, so a failure is reported by the test itself.
    """
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout)
            results[index] = call(index)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    return results
