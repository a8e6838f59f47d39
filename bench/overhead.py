"""Overhead benchmark: the bridge's `query_agent` against an instant upstream, side by side.

Three targets on the same instant upstream (`bench/stub.py`), measured in turns (bridge,
pass-through, stub; again; ...) so that noise from other jobs on the machine hits all three:

- **bridge**: `POST /v1/actions/query_agent` on gunicorn + `bridge:create_app()` (its real hot
  path: authentication, connection, decryption, rate budget, the upstream call, the answer);
- **passthrough**: `bench/passthrough.py`, a 20-line Flask + httpx pass-through on the same
  gunicorn settings (gevent x 2): the cost of the HTTP round trip the bridge wraps;
- **stub**: the upstream called directly: the floor of the load generator and the upstream.

At each connection count (1 and 64 by default), keep-alive connections send calls in a closed
loop for `--seconds`. Reports throughput, p50/p99 latency, latency added over the stub, and CPU
per call of each server; `--py-spy` records the bridge's web workers in one extra run at the
highest connection count and groups the samples (the hot-path profile of bench/PROFILE.md).

    .venv/bin/python -m bench.overhead [--backend sqlite|postgres] [--seconds 5]
        [--connections 1,64] [--rounds 2] [--py-spy] [--out DIR]
"""

from __future__ import annotations

import argparse
import secrets
import shutil
from typing import Any

from bench import harness as h

AGENT_ID = "c0000000stubagent00000000"
AUTH = ("current_connection (bridge/web/auth.py", "authenticate (bridge/connections/service.py")
RE_READ = ("action_context (bridge/runtime.py", "bridge/connections/service.py",
           "bridge/infra/crypto.py", "cryptography/")  # fmt: skip
# Each sample goes to the first group with a frame on its stack: the narrow bridge-level steps
# first, then the libraries, then the wrappers that are on every action's stack.
BRIDGE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rate limiter", ("bridge/upstream/ratelimit.py", "pyrate_limiter/")),
    ("auth (token -> connection, ORM)", AUTH),
    ("connection re-read + decrypt", RE_READ),
    ("httpx / httpcore (upstream call)", ("httpx/", "httpcore/", "h11/")),
    ("input/output schemas (marshmallow)", ("marshmallow/",)),
    ("JSON", ("json/", "jsonify (flask", "get_json (")),
    ("other SQL (sqlalchemy, drivers)", ("sqlalchemy/", "psycopg/", "sqlite3")),
    ("action pool / deadline runner (rest)", ("bridge/runs/", "concurrent/futures")),
    ("Flask / werkzeug", ("flask/", "werkzeug/")),
    ("gunicorn / gevent (HTTP server, sockets)", ("gunicorn/", "gevent/")),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.common_arguments(parser)
    add = parser.add_argument
    add("--seconds", type=float, default=5.0, help="closed-loop time per target and round (5)")
    add("--warmup", type=float, default=1.0, help="untimed seconds per target first (1)")
    add("--connections", default="1,64", help="connection counts, comma-separated (1,64)")
    add("--py-spy", action="store_true", help="profile the bridge in one extra run (needs root)")
    add("--profile-seconds", type=float, default=10.0, help="length of the profiled run (10)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    h.guard_run(args.max_seconds)
    counts = [int(c) for c in args.connections.split(",")]
    result = h.Result(
        "overhead",
        args.backend,
        "query_agent against an instant upstream stub: bridge vs 20-line pass-through vs stub",
    )
    key = f"zw_stub_{secrets.token_hex(8)}"
    with h.workspace("overhead", args.keep) as work, h.Processes(work) as procs:
        env = h.base_env(work)
        stub, stub_port = h.start_stub(procs, env, key)
        upstream = f"http://{h.HOST}:{stub_port}/api/v1"

        pass_port = h.free_port()
        pass_token = f"pt_{secrets.token_hex(16)}"
        pass_env = {**env, "PASSTHROUGH_UPSTREAM": upstream,
                    "PASSTHROUGH_TOKENS": f"{pass_token}={key}"}  # fmt: skip
        passthrough = procs.start(
            "passthrough", h.gunicorn_argv(pass_port, "bench.passthrough:app"), pass_env
        )

        with h.backend(args.backend, work, args.redis_db) as store:
            bridge = h.Bridge(procs, work, store, upstream, h.parse_env_items(args.env))
            h.wait_http(f"http://{h.HOST}:{pass_port}/", passthrough)  # started meanwhile
            token = bridge.connect(key, "100000")
            result.config = {
                "gunicorn": bridge.config,
                "backend": store.label,
                "upstream": "bench/stub.py (asyncio, instant answer)",
                "seconds_per_round": args.seconds,
                "connections": counts,
                "rounds": args.rounds,
            }
            body = {"agent_id": AGENT_ID, "query": "How late are you open on Saturdays?"}
            targets = {
                "bridge": h.json_request("/v1/actions/query_agent", bridge.port, body,
                                         {"Authorization": f"Bearer {token}"}, keepalive=True),
                "passthrough": h.json_request("/v1/actions/query_agent", pass_port, body,
                                              {"Authorization": f"Bearer {pass_token}"},
                                              keepalive=True),
                "stub": h.json_request(f"/api/v1/agents/{AGENT_ID}/query", stub_port,
                                       {"query": body["query"], "streaming": False},
                                       {"Authorization": f"Bearer {key}"}, keepalive=True),
            }  # fmt: skip
            ports = {"bridge": bridge.port, "passthrough": pass_port, "stub": stub_port}
            parties = {
                "bridge": bridge.web.tree,
                "passthrough": passthrough.tree,
                "stub": stub.tree,
            }
            if store.redis_url:
                parties["postgres"] = lambda: h.pids_named("postgres")
                parties["redis"] = lambda: h.pids_named("redis-server")

            for name, request in targets.items():  # warm-up: pools, rate buckets, imports
                calls, _ = h.run_for(ports[name], request, max(counts), args.warmup)
                bad = [c for c in calls if c.status != 200]
                if bad or not calls:
                    log = bridge.web.log if name == "bridge" else passthrough.log
                    raise SystemExit(
                        f"{name} warm-up failed: {h.statuses(calls)} {bad[:1]}\n{h.tail(log)}"
                    )
            for connections in counts:
                for _ in range(args.rounds):
                    for name, request in targets.items():
                        with h.CpuMeter(parties) as meter:
                            calls, wall = h.run_for(ports[name], request, connections, args.seconds)
                        result.add_round(
                            name,
                            {"connections": connections},
                            measure(calls, wall, meter, name),
                        )
            if args.py_spy:
                profile(args, result, bridge, targets["bridge"], max(counts))
    compare(result, counts)
    result.print_table()
    served = ("bridge", "passthrough")
    panels = [h.Panel(f"throughput, {c} connection(s)", "calls/s", "calls_per_s",
                      {"connections": c}, targets=served) for c in counts]  # fmt: skip
    panels += [h.Panel(f"p50 latency, {c} connection(s)", "ms", "p50_ms",
                       {"connections": c}) for c in counts]  # fmt: skip
    panels.append(h.Panel(f"server CPU per call, {max(counts)} connections", "ms",
                          "server_cpu_ms_per_call", {"connections": max(counts)},
                          targets=("bridge", "passthrough")))  # fmt: skip
    result.write(args.out, panels, chart=not args.no_chart)


def measure(calls: list[h.Call], wall: float, meter: h.CpuMeter, target: str) -> dict[str, Any]:
    ok = [c for c in calls if c.status == 200]
    latency = h.spread([c.latency for c in ok], scale=1000, digits=3)
    return {
        "calls": len(calls),
        "ok": len(ok),
        "errors": len(calls) - len(ok),
        "statuses": h.statuses(calls),
        "calls_per_s": round(len(ok) / wall, 1),
        "p50_ms": latency["p50"],
        "p90_ms": latency["p90"],
        "p99_ms": latency["p99"],
        "max_ms": latency["max"],
        "cpu_s": meter.cpu,
        "server_cpu_ms_per_call": round(1000 * meter.cpu.get(target, 0.0) / max(len(ok), 1), 3),
        "other_load_share": meter.other_share,
    }


def profile(
    args: argparse.Namespace, result: h.Result, bridge: h.Bridge, request: bytes, connections: int
) -> None:
    """One extra bridge run under `py-spy record` (not counted in the comparisons)."""
    out = args.out / "profiles" / f"overhead-{args.backend}"
    shutil.rmtree(out, ignore_errors=True)
    with h.Profiler(bridge.web_workers(), out) as spy:
        calls, wall = h.run_for(bridge.port, request, connections, args.profile_seconds)
    summary = h.summarise_stacks(spy.stacks(), BRIDGE_GROUPS)
    summary["calls_per_s_under_profiler"] = round(len(calls) / wall, 1)
    summary["connections"] = connections
    summary["raw_stacks"] = str(out)
    result.summary["profile"] = summary
    print(f"  profile  : {summary['samples']} samples; exclusive groups:")
    for label, share in summary["groups_pct"].items():
        print(f"    {share:5.1f} %  {label}")


def compare(result: h.Result, counts: list[int]) -> None:
    """The issue-14 lines: throughput at the most connections, latency added at the fewest."""
    many, few = max(counts), min(counts)
    bridge_rps = result.median("bridge", "calls_per_s", connections=many)
    pass_rps = result.median("passthrough", "calls_per_s", connections=many)
    stub_rps = result.median("stub", "calls_per_s", connections=many)
    rps_ratio = result.pair_ratio("bridge", "passthrough", "calls_per_s", connections=many)
    rps_pairs = result.pair_ratios("bridge", "passthrough", "calls_per_s", connections=many)
    result.comparisons.append(
        h.Comparison(
            f"query_agent throughput, instant upstream, {many} connections",
            bridge_rps, pass_rps, "calls/s", "20-line pass-through", rps_ratio,
            ">= 1.0 x the pass-through",
            None if rps_ratio is None else rps_ratio >= 1.0,
            f"per pair: {rps_pairs}; stub called directly: {h.fmt(stub_rps)} calls/s",
        )
    )  # fmt: skip

    def added(target: str) -> float | None:
        # per round: the target's p50 minus the stub's p50 measured right after it
        own = result.values(target, "p50_ms", connections=few)
        floor = result.values("stub", "p50_ms", connections=few)
        pairs = [a - b for a, b in zip(own, floor, strict=False) if a is not None and b is not None]
        value = h.median(pairs)
        return None if value is None else round(value, 3)

    bridge_added, pass_added = added("bridge"), added("passthrough")
    result.comparisons.append(
        h.Comparison(
            f"latency added over the upstream, p50, {few} connection",
            bridge_added, pass_added, "ms", "pass-through", h.ratio(bridge_added, pass_added),
            "bridge <= 1.0 ms added",
            None if bridge_added is None else bridge_added <= 1.0,
            f"stub p50 {h.fmt(result.median('stub', 'p50_ms', connections=few))} ms",
        )
    )  # fmt: skip
    bridge_cpu = result.median("bridge", "server_cpu_ms_per_call", connections=many)
    pass_cpu = result.median("passthrough", "server_cpu_ms_per_call", connections=many)
    result.comparisons.append(
        h.Comparison(
            f"server CPU per call, {many} connections",
            bridge_cpu, pass_cpu, "ms", "pass-through",
            result.pair_ratio("bridge", "passthrough", "server_cpu_ms_per_call", connections=many),
            "(no goal; explains the throughput)", None,
        )
    )  # fmt: skip
    shares = [r.metrics["other_load_share"] for r in result.rounds]
    result.summary = {
        "bridge_calls_per_s": bridge_rps,
        "passthrough_calls_per_s": pass_rps,
        "stub_calls_per_s": stub_rps,
        "throughput_ratio": rps_ratio,
        "bridge_added_p50_ms": bridge_added,
        "passthrough_added_p50_ms": pass_added,
        "bridge_cpu_ms_per_call": bridge_cpu,
        "passthrough_cpu_ms_per_call": pass_cpu,
        "errors": sum(r.metrics["errors"] for r in result.rounds),
        "other_load_share_max": max(shares) if shares else None,
        **({"profile": result.summary["profile"]} if "profile" in result.summary else {}),
    }


if __name__ == "__main__":
    main()
