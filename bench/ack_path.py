"""What one inbound acknowledgement costs the bridge's own code, without a server or a network.

    .venv/bin/python -m bench.ack_path [--requests 3000] [--rounds 5] [--provider wordpress]
        [--database-url postgresql+psycopg://...] [--profile N]

In one process, on a temporary SQLite database unless --database-url is given: the app's WSGI
callable is called with a prebuilt environ (no test client, no socket), alternating rounds of
signed `POST /in/<token>` webhooks (each a new document, so each is a new event, answered 202)
and `GET /healthz` (what Flask and the app's hooks cost on their own). Reported: process CPU
(`time.process_time`) per request, medians of the rounds, and the ack's CPU above the floor.
`--profile N` prints cProfile's top N functions (cumulative and own time) for one more round of
acks. This is the part of `bench.ingest`'s CPU per ack that the bridge's code decides; gunicorn,
gevent and the sockets come on top (see PROFILE.md).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask

from bench.ingest import BUILDERS, _text
from bench.inprocess import bridge_on_simulator
from bridge.console.activity import ActivityLog
from bridge.infra import storage
from bridge.runtime import Runtime
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.signing import sign
from bridge.web.context import service_of

Environ = dict[str, Any]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--requests", type=int, default=3000, help="requests per round (3000)")
    add("--rounds", type=int, default=5, help="rounds of each, alternated (5)")
    add("--provider", choices=tuple(BUILDERS), default="wordpress")
    add("--text-bytes", type=int, default=1000, help="document text per webhook (1000)")
    add("--database-url", default="", help="default: a temporary SQLite file")
    add("--profile", type=int, default=0, help="print cProfile's top N for one more round")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        app, seeded = bridge_on_simulator(
            Path(tmp), args.database_url,
            huey_immediate=False, activity_flush_s=3600, log_level="WARNING",
        )  # fmt: skip
        runtime = service_of(app, Runtime)
        storage.migrate(runtime.engine)
        client = app.test_client()
        token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
        made = client.post("/v1/sources", headers={"Authorization": f"Bearer {token}"},
                           json={"provider": args.provider,
                                 "datastore_id": seeded["datastores"][0]["id"]})  # fmt: skip
        if made.status_code != 201:
            raise SystemExit(f"creating the source: {made.status_code} {made.get_data()!r}")
        source = made.get_json()
        total = args.requests * (args.rounds + 1) + (args.requests if args.profile else 0)
        acks = iter(webhooks(args, source["secret"], source["inbound_path"], total))
        floor = environ("GET", "/healthz", b"", {})
        run(app, (next(acks) for _ in range(args.requests)), 202)  # warm-up, not counted
        run(app, (floor for _ in range(args.requests)), 200)
        results: dict[str, list[float]] = {"ack": [], "floor": []}
        for _ in range(args.rounds):
            results["ack"].append(run(app, (next(acks) for _ in range(args.requests)), 202))
            results["floor"].append(run(app, (floor for _ in range(args.requests)), 200))
            service_of(app, ActivityLog).flush()  # the writer thread's work, not the request's
        ack = statistics.median(results["ack"])
        floor_ms = statistics.median(results["floor"])
        print(f"database: {runtime.engine.dialect.name}; provider: {args.provider}; "
              f"{args.rounds} rounds of {args.requests}")  # fmt: skip
        print(f"POST /in/<token>: {ack:.3f} ms CPU per ack (rounds: "
              f"{', '.join(f'{r:.3f}' for r in results['ack'])})")  # fmt: skip
        print(f"GET /healthz:     {floor_ms:.3f} ms CPU per request (rounds: "
              f"{', '.join(f'{r:.3f}' for r in results['floor'])})")  # fmt: skip
        print(f"ack above the floor: {ack - floor_ms:.3f} ms")
        if args.profile:
            profile(app, (next(acks) for _ in range(args.requests)), args.profile)
        service_of(app, ActivityLog).close()
        runtime.close()


def webhooks(args: argparse.Namespace, secret: str, path: str, count: int) -> list[Environ]:
    """`count` signed webhooks, each a new document, as WSGI environs."""
    now = time.time()
    text = _text(args.text_bytes)
    out = []
    for index in range(1, count + 1):
        body, extra, msg_id = BUILDERS[args.provider](index, now, text)
        kwargs: dict[str, Any] = {"now": now, "path": path, "headers": extra}
        if msg_id is not None:
            kwargs["msg_id"] = msg_id
        headers = sign(PROVIDERS[args.provider], secret, body, **kwargs)
        out.append(environ("POST", path, body, {**extra, **headers}))
    return out


def environ(method: str, path: str, body: bytes, headers: dict[str, str]) -> Environ:
    """What gunicorn would hand the app (the body stream is made fresh per call in `run`)."""
    env: Environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "HTTP_HOST": "127.0.0.1:8000", "bench.body": body,
    }  # fmt: skip
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = "application/json"
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def run(app: Flask, environs: Iterable[Environ], expected: int) -> float:
    """Milliseconds of process CPU per request; every answer must be `expected`."""
    calls = 0
    started = time.process_time()
    for env in environs:
        call(app, env, expected)
        calls += 1
    return (time.process_time() - started) / calls * 1000


def call(app: Flask, env: Environ, expected: int) -> None:
    statuses: list[str] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Callable[..., Any]:
        statuses.append(status)
        return lambda data: None

    request = dict(env, **{"wsgi.input": io.BytesIO(env["bench.body"])})
    answer = app.wsgi_app(request, start_response)
    try:
        b"".join(answer)
    finally:
        close = getattr(answer, "close", None)
        if close is not None:
            close()
    if not statuses[0].startswith(str(expected)):
        raise SystemExit(f"{env['REQUEST_METHOD']} {env['PATH_INFO']}: {statuses[0]}")


def profile(app: Flask, environs: Iterable[Environ], top: int, expected: int = 202) -> None:
    profiler = cProfile.Profile(time.process_time)  # CPU, as the rounds measure
    profiler.enable()
    run(app, environs, expected)
    profiler.disable()
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
