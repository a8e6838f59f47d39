"""What one upstream request costs the calling process under gevent, by way of sending it.

    .venv/bin/python -m bench.upstream_wire [--requests 2000] [--rounds 5]

In one gevent-patched process (as a gunicorn gevent worker is), against `bench.stub` on
loopback, alternating rounds of the same `query_agent` POST sent:

- `bridge`: through the bridge's own `UpstreamPool.send` (httpcore pools, `bridge.upstream.wire`);
- `httpx-transport`: through an `httpx.HTTPTransport` with httpx's request and response models
  (how the bridge sent before `bridge.upstream.wire`);
- `httpx-client`: through an `httpx.Client`, as the 20-line pass-through (`bench/passthrough.py`)
  does;
- `http.client`: the standard library on one kept-alive connection, for scale (no pool, no
  timeouts per phase: nothing the bridge could use as it is).

Reported: this process's CPU (`time.process_time`) per request, the minimum and the median of
the rounds (the stub runs in its own process and is not counted).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after the monkey-patching, as in a gevent worker)
import http.client  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

from bench import harness as h  # noqa: E402
from bridge.config import Settings  # noqa: E402
from bridge.upstream.client import UpstreamPool  # noqa: E402

KEY = "zw_stub_key"
PATH = "/api/v1/agents/agent0/query"
BODY = {"query": "What are the opening hours?", "streaming": False}
HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def senders(base: str, work: Path) -> dict[str, Callable[[], Any]]:
    settings = Settings.for_tests(
        {"secret_key": "bench-" + "x" * 40, "var_dir": work, "upstream_base_url": base}
    )
    pool = UpstreamPool(settings)
    transport = httpx.HTTPTransport(retries=0)
    url = httpx.URL(base + PATH)
    client = httpx.Client()
    host, port = url.host, url.port or 80
    plain = http.client.HTTPConnection(host, port)

    def bridge() -> Any:
        return pool.send("POST", base + PATH, None, BODY, HEADERS).json()

    def httpx_transport() -> Any:
        request = httpx.Request("POST", url, json=BODY, headers=HEADERS)
        response = transport.handle_request(request)
        response.read()
        response.close()
        return response.json()

    def httpx_client() -> Any:
        return client.post(url, json=BODY, headers=HEADERS).json()

    def stdlib() -> Any:
        plain.request("POST", PATH, body=json.dumps(BODY).encode(), headers=HEADERS)
        return json.loads(plain.getresponse().read())

    return {"bridge": bridge, "httpx-transport": httpx_transport, "httpx-client": httpx_client,
            "http.client": stdlib}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round (2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each, alternated (5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, h.Processes(Path(tmp)) as procs:
        _stub, port = h.start_stub(procs, h.base_env(Path(tmp)), KEY)
        sends = senders(f"http://{h.HOST}:{port}/api/v1", Path(tmp))
        for send in sends.values():  # warm: connections open, caches filled
            for _ in range(min(200, args.requests)):
                send()
        cpu: dict[str, list[float]] = {name: [] for name in sends}
        for _ in range(args.rounds):
            for name, send in sends.items():
                started = time.process_time()
                for _ in range(args.requests):
                    send()
                cpu[name].append((time.process_time() - started) / args.requests * 1e6)
    print("| sent through | CPU per request, min | median |")
    print("|---|---|---|")
    for name, values in cpu.items():
        print(f"| {name} | {min(values):.0f} µs | {statistics.median(values):.0f} µs |")


if __name__ == "__main__":
    main()
