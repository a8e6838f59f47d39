"""What recording each connection's requests costs (the console's activity log).

    .venv/bin/python bench/activity.py [--requests 20000] [--database-url postgresql+psycopg://...]

Three figures, in one process, on a temporary SQLite database unless --database-url is given:
1. the after-request hook alone (`record_request` inside a request context), in microseconds;
2. `GET /v1/me` through the WSGI app with the hook and without it (median of 5 rounds each),
   so the difference is the hook's share of a real request;
3. the batch writer: records written per second by `ActivityLog.flush` in batches of 1,000.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from bench.inprocess import bridge_on_simulator
from bridge.console.activity import ActivityLog, Record
from bridge.infra import storage
from bridge.runtime import Runtime
from bridge.web.context import service_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app, seeded = bridge_on_simulator(  # the activity is flushed by hand below
            Path(tmp), args.database_url, huey_immediate=True, activity_flush_s=3600
        )
        runtime = service_of(app, Runtime)
        storage.migrate(runtime.engine)
        log = service_of(app, ActivityLog)
        client = app.test_client()
        token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
        headers = {"Authorization": f"Bearer {token}"}

        hook_us = time_hook(app, args.requests)
        log.flush()
        with_hook, without_hook = alternate(app, client, headers, args.requests // 10, log)
        rows_per_s = time_flush(log, args.requests)
        print(f"hook alone: {hook_us:.2f} us per request ({args.requests} calls)")
        print(f"GET /v1/me: {with_hook:.1f} us with the hook, {without_hook:.1f} us without "
              f"(difference {with_hook - without_hook:+.1f} us, medians of 5 rounds)")  # fmt: skip
        print(f"batch writer: {rows_per_s:,.0f} records/s ({runtime.engine.dialect.name})")
        log.close()
        runtime.close()


def time_hook(app: Flask, count: int) -> float:
    """Microseconds per call of the after-request hook for an authenticated request."""
    from flask import Response

    from bridge.web.context import attribute

    log = service_of(app, ActivityLog)
    hook = next(f for f in app.after_request_funcs[None] if f.__name__ == "record_request")
    with app.test_request_context("/v1/me", headers={"Authorization": "Bearer x"}):
        attribute("conn_bench")
        response = Response("{}", status=200)
        elapsed = 0.0
        for start in range(0, count, 10_000):
            started = time.perf_counter()
            for _ in range(start, min(count, start + 10_000)):
                hook(response)
            elapsed += time.perf_counter() - started
            log.flush()  # outside the timing: the writer thread's work, not the request's
    return elapsed / count * 1e6


def alternate(
    app: Flask, client: FlaskClient, headers: dict[str, str], count: int, log: ActivityLog
) -> tuple[float, float]:
    """Medians over 5 alternating rounds of the microseconds per `GET /v1/me` through the WSGI
    app, with the hook and without it (alternated so the machine's load hits both alike)."""
    hooks = app.after_request_funcs[None]
    hook = next(f for f in hooks if f.__name__ == "record_request")
    results: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(5):
        for hooked in (True, False):
            if not hooked:
                hooks.remove(hook)
            started = time.perf_counter()
            for _ in range(count):
                client.get("/v1/me", headers=headers)
            results[hooked].append((time.perf_counter() - started) / count * 1e6)
            if not hooked:
                hooks.append(hook)
            log.flush()
    return statistics.median(results[True]), statistics.median(results[False])


def time_flush(log: ActivityLog, count: int) -> float:
    now = datetime.now(UTC)
    total = 0.0
    for start in range(0, count, 1000):
        for n in range(start, min(count, start + 1000)):
            log.record(Record("conn_bench", now, "POST", "/v1/actions/query_agent",
                              "/v1/actions/query_agent", 200, f"10.0.{n % 250}.1"))  # fmt: skip
        started = time.perf_counter()
        log.flush()
        total += time.perf_counter() - started
    return count / total


if __name__ == "__main__":
    main()
