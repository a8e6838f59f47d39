"""The web stack's own cost per request, without the bridge: where issue 14's latency goal stands.

The goal "latency added at 1 connection: p50 at most 1.0 ms over the upstream's own" is for any
Flask service on gunicorn. This measures, on the same gunicorn settings as the bridge (gevent
x 2, `gunicorn.conf.py`) and the same instant upstream (`bench/stub.py`), at one connection,
the layers a pass-through is made of, one more each time:

- **bare**: a WSGI function answering `{}` (gunicorn, gevent and the loopback alone);
- **flask**: a Flask route reading the JSON body and answering `{}`;
- **upstream_http_client**: a WSGI function making the upstream call with `http.client` on one
  kept-alive connection (the cheapest client there is);
- **upstream_httpx**: the same call with an `httpx.Client`;
- **flask_upstream**: a Flask route making that `http.client` call (the least a Flask service
  calling the upstream does);
- **passthrough**: the 20-line Flask + httpx pass-through of `bench.overhead`.

Each with its p50 latency, its latency above the stub called directly, and its server CPU per
call, in alternating rounds. What "flask_upstream" adds above the stub is a floor no Flask
service on this gunicorn calling the upstream goes under on this machine.

    .venv/bin/python -m bench.stack_floor [--seconds 3] [--rounds 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
from typing import Any

from bench import harness as h

AGENT_ID = "c0000000stubagent00000000"
QUERY_PATH = f"/api/v1/agents/{AGENT_ID}/query"
QUERY = {"query": "How late are you open on Saturdays?", "streaming": False}
LAYERS = ("bare", "flask", "upstream_http_client", "upstream_httpx", "flask_upstream",
          "passthrough")  # fmt: skip
APPS = {
    "bare": "bench.stack_floor:bare",
    "flask": "bench.stack_floor:flask_app()",
    "upstream_http_client": "bench.stack_floor:upstream_http_client",
    "upstream_httpx": "bench.stack_floor:upstream_httpx_app()",
    "flask_upstream": "bench.stack_floor:flask_upstream_app()",
    "passthrough": "bench.passthrough:app",
}


# --- the layers, served by gunicorn in their own processes -------------------------------------


def _answer(start_response: Any, body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])  # fmt: skip
    return [body]


def _upstream() -> tuple[str, int, dict[str, str]]:
    host_port = os.environ["STACK_UPSTREAM"]  # 127.0.0.1:<port>
    host, port = host_port.split(":")
    headers = {"Authorization": f"Bearer {os.environ['STACK_KEY']}",
               "Content-Type": "application/json"}  # fmt: skip
    return host, int(port), headers


def bare(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    return _answer(start_response, b"{}")


def flask_app() -> Any:
    from flask import Flask, jsonify, request

    app = Flask("stack_floor")

    @app.post("/v1/actions/query_agent")
    def answer() -> Any:
        request.get_json()
        return jsonify({})

    return app


_kept: http.client.HTTPConnection | None = None


def upstream_http_client(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    global _kept  # one kept-alive connection per worker process (one connection measured)
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    host, port, headers = _upstream()
    if _kept is None:
        _kept = http.client.HTTPConnection(host, port, timeout=10)
    _kept.request("POST", QUERY_PATH, json.dumps(QUERY).encode(), headers)
    return _answer(start_response, _kept.getresponse().read())


def flask_upstream_app() -> Any:
    from flask import Flask, Response, request

    app = Flask("stack_floor_upstream")
    host, port, headers = _upstream()
    kept = http.client.HTTPConnection(host, port, timeout=10)

    @app.post("/v1/actions/query_agent")
    def answer() -> Response:
        request.get_json()
        kept.request("POST", QUERY_PATH, json.dumps(QUERY).encode(), headers)
        return Response(kept.getresponse().read(), content_type="application/json")

    return app


def upstream_httpx_app() -> Any:
    import httpx

    host, port, headers = _upstream()
    client = httpx.Client(base_url=f"http://{host}:{port}", headers=headers, timeout=10)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        return _answer(start_response, client.post(QUERY_PATH, json=QUERY).content)

    return app


# --- the measurement ----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.common_arguments(parser, rounds=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="per layer and round (3)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    h.guard_run(args.max_seconds)
    result = h.Result("stack_floor", "none", "the web stack's own cost per request, 1 connection")
    key = f"zw_stub_{secrets.token_hex(8)}"
    with h.workspace("stack_floor", args.keep) as work, h.Processes(work) as procs:
        env = h.base_env(work)
        stub, stub_port = h.start_stub(procs, env, key)
        served = {**env, "STACK_UPSTREAM": f"{h.HOST}:{stub_port}", "STACK_KEY": key,
                  "PASSTHROUGH_UPSTREAM": f"http://{h.HOST}:{stub_port}/api/v1",
                  "PASSTHROUGH_TOKENS": f"tok={key}"}  # fmt: skip
        ports: dict[str, int] = {}
        servers: dict[str, h.Proc] = {}
        for layer in LAYERS:
            ports[layer] = h.free_port()
            servers[layer] = procs.start(layer, h.gunicorn_argv(ports[layer], APPS[layer]), served)
        body = {"agent_id": AGENT_ID, "query": QUERY["query"]}
        requests = {
            layer: h.json_request("/v1/actions/query_agent", ports[layer], body,
                                  {"Authorization": "Bearer tok"}, keepalive=True)
            for layer in LAYERS
        }  # fmt: skip
        stub_auth = {"Authorization": f"Bearer {key}"}
        requests["stub"] = h.json_request(QUERY_PATH, stub_port, QUERY, stub_auth, keepalive=True)
        ports["stub"] = stub_port
        parties = {layer: servers[layer].tree for layer in LAYERS} | {"stub": stub.tree}
        for layer in LAYERS:
            h.wait_http(f"http://{h.HOST}:{ports[layer]}/healthz", servers[layer])
        result.config = {"gunicorn": h.gunicorn_settings(served), "connections": 1,
                         "seconds_per_round": args.seconds, "rounds": args.rounds}  # fmt: skip
        for target, request in requests.items():  # warm-up: imports, kept-alive connections
            calls, _ = h.run_for(ports[target], request, 1, min(1.0, args.seconds))
            if not calls or any(c.status != 200 for c in calls):
                raise SystemExit(f"{target} warm-up failed: {h.statuses(calls)}")
        for _ in range(args.rounds):
            for target, request in requests.items():
                with h.CpuMeter(parties) as meter:
                    calls, _ = h.run_for(ports[target], request, 1, args.seconds)
                ok = [c for c in calls if c.status == 200]
                result.add_round(target, {"connections": 1}, {
                    "calls": len(calls), "errors": len(calls) - len(ok),
                    "p50_ms": h.spread([c.latency for c in ok], scale=1000)["p50"],
                    "server_cpu_ms_per_call": round(
                        1000 * meter.cpu.get(target, 0.0) / max(len(ok), 1), 3),
                    "other_load_share": meter.other_share,
                })  # fmt: skip
    stub_p50 = result.median("stub", "p50_ms") or 0.0
    for layer in LAYERS:
        p50 = result.median(layer, "p50_ms")
        added = None if p50 is None else round(p50 - stub_p50, 3)
        cpu = result.median(layer, "server_cpu_ms_per_call")
        result.summary[layer] = {"p50_ms": p50, "added_p50_ms": added, "cpu_ms_per_call": cpu}
        if layer != "bare":
            result.comparisons.append(h.Comparison(
                f"latency added over the upstream, p50: {layer}", added, 1.0, "ms",
                "issue 14's goal for the bridge", h.ratio(added, 1.0), "(no goal: a floor)", None,
            ))  # fmt: skip
    result.summary["stub_p50_ms"] = stub_p50
    result.print_table()
    for layer in LAYERS:
        entry = result.summary[layer]
        print(f"  {layer:22s} p50 {entry['p50_ms']} ms, above the stub {entry['added_p50_ms']} ms,"
              f" server CPU {entry['cpu_ms_per_call']} ms per call")  # fmt: skip
    result.write(args.out, chart=False)


if __name__ == "__main__":
    main()
