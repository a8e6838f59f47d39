"""What one `query_agent` call costs the bridge's own code, beside the 20-line pass-through, in
one process: no server, no sockets.

    .venv/bin/python -m bench.action_path [--requests 3000] [--rounds 5] [--no-gevent]
        [--database-url postgresql+psycopg://...] [--redis-url redis://...] [--profile N]

The bridge (on a temporary SQLite database unless --database-url is given; its rate budget on
Redis when --redis-url is given) and `bench.passthrough` share one instant upstream: an
`httpx.MockTransport` answering `bench.stub`'s payloads. Their WSGI callables are called with
prebuilt environs, in alternating rounds, after gevent's monkey-patching as under gunicorn
(unless --no-gevent). Reported: process CPU per call (`time.process_time`), medians of the
rounds, and the bridge's CPU above the pass-through's. `--profile N` prints cProfile's top N
functions for one more round of the bridge. This is the part of `bench.overhead`'s CPU per call
that the bridge's code decides; gunicorn, gevent's hub and the sockets come on top.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--no-gevent" not in sys.argv:  # as gunicorn's gevent worker does
    from gevent import monkey

    monkey.patch_all()

import argparse
import importlib
import json
import os
import statistics
import tempfile
from pathlib import Path

import httpx
from flask import Flask

from bench.ack_path import Environ, environ, profile, run
from bench.inprocess import BENCH_SECRET
from bench.stub import AGENT_QUERY, ANSWER, ME
from bridge import create_app
from bridge.console.activity import ActivityLog
from bridge.infra import storage
from bridge.runtime import Runtime
from bridge.web.context import service_of

KEY = "zw_action_path_key"
AGENT_ID = "c0000000stubagent00000000"
QUERY = {"agent_id": AGENT_ID, "query": "How late are you open on Saturdays?"}


def instant_upstream(request: httpx.Request) -> httpx.Response:
    """`bench.stub` without the socket: the bearer key checked, a fixed answer."""
    if request.headers.get("authorization") != f"Bearer {KEY}":
        return httpx.Response(401, json={"error": {"code": "UNAUTHORIZED"}})
    if request.method == "GET" and request.url.path == "/api/v1/me":
        return httpx.Response(200, json=ME)
    if request.method == "POST" and AGENT_QUERY.match(request.url.path.encode()):
        return httpx.Response(200, json=ANSWER)
    return httpx.Response(404, json={"error": {"code": "NOT_FOUND"}})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--requests", type=int, default=3000, help="calls per round (3000)")
    add("--rounds", type=int, default=5, help="rounds of each, alternated (5)")
    add("--database-url", default="", help="default: a temporary SQLite file")
    add("--redis-url", default="", help="the rate budget on Redis (default: the database)")
    add("--no-gevent", action="store_true", help="skip gevent's monkey-patching")
    add("--profile", type=int, default=0, help="print cProfile's top N for one more round")
    args = parser.parse_args(argv)
    transport = httpx.MockTransport(instant_upstream)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "secret_key": BENCH_SECRET, "var_dir": Path(tmp),
                "upstream_base_url": "http://stub/api/v1",
                "database_url": args.database_url or f"sqlite:///{tmp}/bench.sqlite3",
                "redis_url": args.redis_url, "huey_immediate": False,
                "activity_flush_s": 3600, "log_level": "WARNING",
            },
            upstream_transport=transport,
        )  # fmt: skip
        runtime = service_of(app, Runtime)
        storage.migrate(runtime.engine)
        made = app.test_client().post("/v1/connections", json={"api_key": KEY, "plan": "100000"})
        if made.status_code != 201:
            raise SystemExit(f"creating the connection: {made.status_code} {made.get_data()!r}")
        bridge_call = call_environ(made.get_json()["token"])
        passthrough = passthrough_app(transport)
        pass_call = call_environ("pt_token")
        targets = {"bridge": (app, bridge_call), "passthrough": (passthrough, pass_call)}
        for target, call in targets.values():  # warm-up: pools, buckets, imports
            run(target, (call for _ in range(args.requests)), 200)
        results: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (target, call) in targets.items():
                results[name].append(run(target, (call for _ in range(args.requests)), 200))
            service_of(app, ActivityLog).flush()  # the writer thread's work, not the call's
        store = runtime.engine.dialect.name + (" + Redis" if args.redis_url else "")
        print(f"database: {store}; gevent: {not args.no_gevent}; "
              f"{args.rounds} rounds of {args.requests}")  # fmt: skip
        medians = {}
        for name, rounds in results.items():
            medians[name] = statistics.median(rounds)
            print(f"{name + ':':13} {medians[name]:.3f} ms CPU per call (rounds: "
                  f"{', '.join(f'{r:.3f}' for r in rounds)})")  # fmt: skip
        print(f"bridge above the pass-through: {medians['bridge'] - medians['passthrough']:.3f} ms")
        if args.profile:
            profile(app, (bridge_call for _ in range(args.requests)), args.profile, expected=200)
        service_of(app, ActivityLog).close()
        runtime.close()


def call_environ(token: str) -> Environ:
    return environ("POST", "/v1/actions/query_agent", json.dumps(QUERY).encode(),
                   {"Authorization": f"Bearer {token}"})  # fmt: skip


def passthrough_app(transport: httpx.BaseTransport) -> Flask:
    """`bench.passthrough`, its client on the same instant upstream."""
    os.environ["PASSTHROUGH_UPSTREAM"] = "http://stub/api/v1"
    os.environ["PASSTHROUGH_TOKENS"] = f"pt_token={KEY}"
    module = importlib.import_module("bench.passthrough")
    client = httpx.Client(base_url="http://stub/api/v1", timeout=30, transport=transport)
    module.http = client  # type: ignore[attr-defined]  # the module-level client it posts with
    app: Flask = module.app
    return app


if __name__ == "__main__":
    main()
