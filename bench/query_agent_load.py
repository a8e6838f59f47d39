"""Concurrency benchmark: N concurrent `query_agent` calls on a slow (3 s) simulated ZappWay.

Starts the simulator (one org on a 100000/min plan, so its own rate limit and quota stay out of
the way) and the bridge (gunicorn with `gunicorn.conf.py`), creates a connection, warms every
worker up, adds a `latency` fault of `--latency` seconds on `/query`, then alternates:

- **bridge**: N `POST /v1/actions/query_agent` started at the same instant, each on its own
  connection;
- **baseline**: the same burst straight to the simulator's query route: the floor that the load
  generator and the simulator alone impose on this machine.

For each burst: latency p50/p90/p99/max measured at the client from the common start, statuses,
when the simulator saw the calls arrive and how long it took to answer them, the peak summed
RSS/PSS of the gunicorn tree (sampled every 100 ms), CPU of each party and listen overflows.

    .venv/bin/python -m bench.query_agent_load [--backend sqlite|postgres] [--requests 1000]
        [--latency 3] [--rounds 2] [--only bridge|baseline] [--worker-class gevent|gthread]
        [--workers W] [--threads T] [--worker-connections C] [--action-threads A]
        [--py-spy-dump SECONDS] [--plain-sim] [--out DIR]
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import harness as h
from bridge.config import Settings

RSS_GOAL_MB = 400.0
P99_RATIO_GOAL = 1.05


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.common_arguments(parser)
    add = parser.add_argument
    add("--requests", type=int, default=1000, help="concurrent calls per burst (1000)")
    add("--latency", type=float, default=3.0, help="upstream answer time in seconds (3)")
    add("--only", choices=("bridge", "baseline"), help="measure one target only")
    add("--worker-class", choices=("gthread", "gevent"), help="WEB_WORKER_CLASS")
    add("--workers", type=int, help="WEB_CONCURRENCY (default: gunicorn.conf.py's)")
    add("--threads", type=int, help="WEB_THREADS, gthread only")
    add("--worker-connections", type=int, help="WEB_WORKER_CONNECTIONS, gevent only")
    add("--action-threads", type=int, help="BRIDGE_ACTION_THREADS (default: the bridge's)")
    add("--plain-sim", action="store_true", help="run `python -m sim` without the load tunings")
    add("--warmup", type=int, default=2, help="warm-up calls per web worker (2)")
    add("--timeout", type=float, default=60, help="per-call client timeout (60 s)")
    add("--pause", type=float, default=1.0, help="seconds between bursts (1)")
    add("--py-spy-dump", type=float, metavar="SECONDS",
        help="py-spy dump the web workers this long into the first bridge burst")  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    h.guard_run(args.max_seconds)
    result = h.Result(
        "concurrency",
        args.backend,
        f"{args.requests} concurrent query_agent calls on {args.latency:g} s upstream answers:"
        " bridge vs the simulator called directly (--baseline)",
    )
    targets = [args.only] if args.only else ["bridge", "baseline"]
    with h.workspace("concurrency", args.keep) as work, h.Processes(work) as procs:
        env = h.base_env(work)
        sim = h.Simulator(procs, env, plain=args.plain_sim)
        seeded = sim.admin.seed(plan=100_000)
        api_key, agent_id = seeded["key"], seeded["agents"][0]["id"]
        with h.backend(args.backend, work, args.redis_db) as store:
            settings = {
                "WEB_WORKER_CLASS": args.worker_class,
                "WEB_CONCURRENCY": args.workers,
                "WEB_THREADS": args.threads,
                "WEB_WORKER_CONNECTIONS": args.worker_connections,
                "BRIDGE_ACTION_THREADS": args.action_threads,
                **h.parse_env_items(args.env),
            }
            bridge = h.Bridge(procs, work, store, sim.api_url, settings)
            token = bridge.connect(api_key, "100000")
            result.config = {
                "gunicorn": bridge.config,
                "action_threads": Settings.from_environ(bridge.env).action_threads,
                "backend": store.label,
                "simulator": "plain" if args.plain_sim else "tuned (accept queue 4096, 0.5 s step)",
                "requests": args.requests,
                "upstream_latency_s": args.latency,
                "rounds": args.rounds,
            }
            query = {"agent_id": agent_id}
            auth = {"Authorization": f"Bearer {token}"}

            def bridge_burst(count: int, tag: str) -> list[bytes]:
                return [h.json_request("/v1/actions/query_agent", bridge.port,
                                       {**query, "query": f"{tag} question {i}?"}, auth)
                        for i in range(count)]  # fmt: skip

            def baseline_burst(count: int, tag: str) -> list[bytes]:
                path = f"/api/v1/agents/{agent_id}/query"
                return [h.json_request(path, sim.port, {"query": f"{tag} question {i}?",
                                       "streaming": False}, {"Authorization": f"Bearer {api_key}"})
                        for i in range(count)]  # fmt: skip

            warm = args.warmup * int(bridge.config["workers"])
            if warm:  # without the latency fault: pools and rate buckets get created
                calls, _ = h.fire(bridge.port, bridge_burst(warm, "warm"), warm, 30)
                if any(c.status != 200 for c in calls):
                    raise SystemExit(
                        f"warm-up failed: {h.statuses(calls)}\n{h.tail(bridge.web.log)}"
                    )
            sim.admin.add_fault("latency", path="/query", seconds=args.latency)
            parties = {"bridge": bridge.web.tree, "simulator": sim.proc.tree}
            if store.redis_url:
                parties["postgres"] = lambda: h.pids_named("postgres")
                parties["redis"] = lambda: h.pids_named("redis-server")
            for round_index in range(args.rounds):
                for target in targets:
                    if target == "bridge":
                        requests, port, root = (
                            bridge_burst(args.requests, "load"),
                            bridge.port,
                            bridge.web.pid,
                        )
                    else:
                        requests, port, root = (
                            baseline_burst(args.requests, "base"),
                            sim.port,
                            sim.proc.pid,
                        )
                    dump = None
                    if target == "bridge" and round_index == 0 and args.py_spy_dump is not None:
                        where = (bridge.web_workers(), work / "py-spy-dump.txt")
                        dump = threading.Timer(args.py_spy_dump, dump_stacks, where)
                        dump.start()
                    metrics = burst(sim, port, requests, root, parties, args.timeout)
                    if dump is not None:
                        dump.join()
                        metrics["py_spy_dump"] = str(work / "py-spy-dump.txt")
                    if target == "bridge":
                        metrics["log_error_lines"] = log_errors(bridge.web.log)
                    result.add_round(target, {}, metrics)
                    time.sleep(args.pause)
    compare(result)
    result.print_table()
    floor = result.median("baseline", "p99_s")
    goal = {f"goal {P99_RATIO_GOAL} x baseline": P99_RATIO_GOAL * floor} if floor else {}
    panels = [
        h.Panel("p99 latency per burst", "s", "p99_s", lines=goal),
        h.Panel("p50 latency per burst", "s", "p50_s"),
        h.Panel("peak RSS per burst", "MB", "peak_rss_mb", lines={"goal 400 MB": RSS_GOAL_MB}),
    ]  # fmt: skip
    result.write(args.out, panels, chart=not args.no_chart)


def burst(
    sim: h.Simulator,
    port: int,
    requests: list[bytes],
    root: int,
    parties: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """Fire every request at once; measure it."""
    sim.admin.clear_requests()
    idle = h.memory_of(root)
    overflows = h.listen_overflows()
    started_epoch = time.time()
    with h.MemorySampler(root) as memory, h.CpuMeter(parties) as meter:
        calls, wall = h.fire(port, requests, len(requests), timeout)
    ok = [c for c in calls if c.status == 200]
    codes = Counter(h.error_code(c) for c in calls if isinstance(c.status, int) and c.status != 200)
    upstream = [c for c in sim.admin.requests() if c["path"].endswith("/query")]
    latency = h.spread([c.latency for c in calls])
    return {
        "requests": len(calls),
        "ok": len(ok),
        "errors": len(calls) - len(ok),
        "statuses": h.statuses(calls),
        "error_codes": dict(codes),
        "p50_s": latency["p50"],
        "p90_s": latency["p90"],
        "p99_s": latency["p99"],
        "max_s": latency["max"],
        "wall_s": round(wall, 3),
        "upstream_calls": len(upstream),
        "upstream_arrival_s": h.spread([c["at"] - started_epoch for c in upstream]),
        "upstream_duration_s": h.spread([c["duration_s"] for c in upstream]),
        "peak_rss_mb": memory.peak.rss_mb,
        "peak_pss_mb": memory.peak.pss_mb,
        "idle_rss_mb": idle.rss_mb,
        "peak_threads": memory.peak.threads,
        "processes": memory.peak.processes,
        "cpu_s": meter.cpu,
        "other_load_share": meter.other_share,
        "listen_overflows": h.listen_overflows() - overflows,
    }


def log_errors(path: Path) -> int:
    pattern = re.compile(r"\b(ERROR|CRITICAL|Traceback|WORKER TIMEOUT)\b")
    try:
        return sum(
            1 for line in path.read_text(errors="replace").splitlines() if pattern.search(line)
        )
    except OSError:
        return 0


def dump_stacks(pids: list[int], out: Path) -> None:
    """`py-spy dump` every worker into `out` (needs root or ptrace rights)."""
    import subprocess

    with out.open("w") as handle:
        for pid in pids:
            handle.write(f"===== pid {pid}\n")
            handle.flush()
            subprocess.run([str(h.BIN / "py-spy"), "dump", "--pid", str(pid)], stdout=handle,
                           stderr=subprocess.STDOUT, timeout=60, check=False)  # fmt: skip


def compare(result: h.Result) -> None:
    bridge_p99 = result.median("bridge", "p99_s")
    base_p99 = result.median("baseline", "p99_s")
    p99_ratio = result.pair_ratio("bridge", "baseline", "p99_s")
    errors = sum(r.metrics["errors"] for r in result.rounds if r.target == "bridge")
    requests = sum(r.metrics["requests"] for r in result.rounds if r.target == "bridge")
    rss = max(
        (r.metrics["peak_rss_mb"] for r in result.rounds if r.target == "bridge"), default=None
    )
    pairs = result.pair_ratios("bridge", "baseline", "p99_s")
    n = result.config.get("requests")
    seconds = result.config.get("upstream_latency_s")
    title = f"{n} concurrent query_agent, {seconds:g} s answers: p99"
    result.comparisons += [
        h.Comparison(title, bridge_p99, base_p99, "s",
                     "harness alone (--baseline)", p99_ratio, f"<= {P99_RATIO_GOAL} x the harness",
                     None if p99_ratio is None else p99_ratio <= P99_RATIO_GOAL,
                     f"per pair: {pairs}"),
        h.Comparison(f"{n} concurrent query_agent: calls answered 200", float(requests - errors),
                     float(requests), "", "sent", h.ratio(requests - errors, requests),
                     "all succeed", None if not requests else errors == 0),
        h.Comparison(f"{n} concurrent query_agent: peak RSS (gunicorn tree)", rss, None, "MB", "",
                     None, f"<= {RSS_GOAL_MB:.0f} MB", None if rss is None else rss <= RSS_GOAL_MB),
    ]  # fmt: skip
    shares = [r.metrics["other_load_share"] for r in result.rounds]
    result.summary = {
        "bridge_p99_s": bridge_p99,
        "baseline_p99_s": base_p99,
        "p99_ratio": p99_ratio,
        "bridge_p50_s": result.median("bridge", "p50_s"),
        "baseline_p50_s": result.median("baseline", "p50_s"),
        "bridge_errors": errors,
        "bridge_requests": requests,
        "peak_rss_mb": rss,
        "other_load_share_max": max(shares) if shares else None,
    }


if __name__ == "__main__":
    main()
