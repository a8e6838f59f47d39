"""Fan-out benchmark: many REST-hook subscribers on a few agents.

Starts the simulator, the bridge (gunicorn + one `python -m bridge.worker`) and a local receiver
(threaded, with a 1024-connection accept queue), subscribes `--subscribers` hooks spread over
`--agents` agents, then creates one conversation per agent every half poll interval for
`--duration` seconds. Reports upstream calls per minute (from the simulator's request log: they
should scale with agents, not subscribers) and the latency from a conversation's creation to
each hook's receipt, plus missing and duplicated deliveries.

There is no A/B here: the reference is arithmetic. Without the bridge every subscriber would
poll for itself (`subscribers x 60 / interval` list calls a minute); the goal is that the bridge
polls per agent (`agents x 60 / interval`) and delivers within the interval plus 2 s at p95.

    .venv/bin/python -m bench.fanout [--backend sqlite|postgres] [--subscribers 1000]
        [--agents 10] [--duration 60] [--full] [--poll-interval 15] [--out DIR]

`--full` is the historical run (1,000 hooks, 120 s, ~4 minutes); `make bench` uses 60 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import sqlalchemy

from bench import harness as h
from bridge.infra.models import Event


class BackloggedServer(ThreadingHTTPServer):
    """A receiver with a real server's accept queue: socketserver's default of 5 drops the SYNs
    of a parallel burst, and each dropped one costs the sender a 1 s retransmit."""

    request_queue_size = 1024
    daemon_threads = True


class Receiver:
    """Records (webhook-id, conversation id, arrival time) for every POST."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                item = json.loads(body)
                with receiver.lock:
                    receiver.arrivals.append((self.headers["webhook-id"], item["id"], time.time()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = BackloggedServer((h.HOST, 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self.lock:
            return len(self.arrivals)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.common_arguments(parser, rounds=None)
    add = parser.add_argument
    add("--subscribers", type=int, default=1000, help="hooks (1000)")
    add("--agents", type=int, default=10, help="agents they are spread over (10)")
    add("--duration", type=float, default=60, help="seconds of new conversations (60)")
    add("--full", action="store_true", help="the historical run: --duration 120")
    add("--poll-interval", type=float, default=15, help="BRIDGE_POLL_INTERVAL (15 s)")
    add("--settle", type=float, default=60, help="most seconds to wait for the last deliveries")
    args = parser.parse_args()
    if args.full:
        args.duration = 120.0
    return args


def main() -> None:
    args = parse_args()
    h.guard_run(args.max_seconds)
    result = h.Result(
        "fanout",
        args.backend,
        f"{args.subscribers} REST hooks on {args.agents} agents, {args.poll_interval:g} s poll"
        f" interval, {args.duration:g} s of new conversations",
    )
    with (
        h.workspace("fanout", args.keep) as work,
        h.Processes(work) as procs,
        Receiver() as receiver,
    ):
        env = h.base_env(work)
        sim = h.Simulator(procs, env, plain=True)
        org = sim.admin.create_org("Fan-out", plan=100_000)
        key = sim.admin.create_key(org["id"])
        agents = [sim.admin.create_agent(org["id"], f"Agent {i}")["id"] for i in range(args.agents)]
        settings = {
            "BRIDGE_POLL_INTERVAL": args.poll_interval,
            "BRIDGE_ALLOW_PRIVATE_TARGETS": "true",
            **h.parse_env_items(args.env),
        }
        with h.backend(args.backend, work, args.redis_db) as store:
            bridge = h.Bridge(procs, work, store, sim.api_url, settings)
            try:
                bridge.start_worker()
                result.config = {
                    "gunicorn": bridge.config,
                    "backend": store.label,
                    "subscribers": args.subscribers,
                    "agents": args.agents,
                    "poll_interval_s": args.poll_interval,
                    "duration_s": args.duration,
                }
                token = bridge.connect(key, "100000")
                subscribe(bridge, token, agents, receiver.port, args.subscribers)
                wait_for_worker_polls(sim, bridge)
                run(args, result, sim, bridge, receiver, agents)
            finally:
                bridge.stop()
    compare(args, result)
    result.print_table()
    panels = [
        h.Panel("delivery latency (creation -> receipt)", "s",
                values=result.summary.pop("latencies_s"),
                lines={}),
    ]  # fmt: skip
    result.write(args.out, panels, chart=not args.no_chart)


def subscribe(bridge: h.Bridge, token: str, agents: list[str], port: int, count: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=bridge.url, timeout=30, headers=headers) as http:
        for index in range(count):
            target = f"http://{h.HOST}:{port}/hook/{index}"
            agent = agents[index % len(agents)]
            http.post(
                "/v1/hooks", json={"target_url": target, "agent_id": agent}
            ).raise_for_status()
        for agent in agents:  # seed every watch so that only new conversations count
            http.get("/v1/triggers/new_conversation", params={"agent_id": agent})


def wait_for_worker_polls(sim: h.Simulator, bridge: h.Bridge, timeout: float = 90) -> None:
    """Start once the worker has begun polling (a new hook's watch is polled at once)."""
    sim.admin.clear_requests()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any("/conversations" in call["path"] for call in sim.admin.requests()):
            return
        if bridge.worker is not None:
            bridge.worker.check()
        time.sleep(0.5)
    raise SystemExit("the worker never polled the upstream")


def run(
    args: argparse.Namespace,
    result: h.Result,
    sim: h.Simulator,
    bridge: h.Bridge,
    receiver: Receiver,
    agents: list[str],
) -> None:
    sim.admin.clear_requests()
    with receiver.lock:
        receiver.arrivals.clear()
    parties = {
        "bridge": lambda: bridge.web.tree() + (bridge.worker.tree() if bridge.worker else []),
        "simulator": sim.proc.tree,
    }
    if bridge.store.redis_url:
        parties["postgres"] = lambda: h.pids_named("postgres")
        parties["redis"] = lambda: h.pids_named("redis-server")
    print(f"  creating conversations for {args.duration:g} s", flush=True)
    created: dict[str, float] = {}
    with h.CpuMeter(parties) as meter:
        started = time.time()
        while time.time() - started < args.duration:
            for agent in agents:
                conversation = sim.admin.create_conversation(
                    agent, messages=[{"from": "human", "text": "hi"}]
                )
                created[conversation["id"]] = time.time()
            time.sleep(args.poll_interval / 2)
        expected = len(created) * (args.subscribers // len(agents))
        deadline = time.time() + args.poll_interval + args.settle
        while time.time() < deadline and receiver.count() < expected:
            time.sleep(0.5)
        elapsed = time.time() - started
    calls = sim.admin.requests()
    lists = [c for c in calls if c["path"].endswith(("/conversations", "/logs"))]
    details = [c for c in calls if "/conversations/" in c["path"]]
    minutes = max(elapsed / 60, 1e-9)
    with receiver.lock:
        arrivals = list(receiver.arrivals)
    ids = Counter(webhook_id for webhook_id, _, _ in arrivals)
    first_seen: dict[tuple[str, str], float] = {}
    for webhook_id, conversation_id, at in arrivals:
        first_seen.setdefault((webhook_id, conversation_id), at)
    latencies = sorted(
        at - created[conv] for (_, conv), at in first_seen.items() if conv in created
    )
    spread = h.spread(latencies, digits=2)
    recorded = event_times(bridge.store.database_url)
    detection = [recorded[conv] - at for conv, at in created.items() if conv in recorded]
    delivery = [at - recorded[conv] for (_, conv), at in first_seen.items() if conv in recorded]
    result.add_round(
        "bridge",
        {},
        {
            "conversations": len(created),
            "deliveries_expected": expected,
            "deliveries_received": len(first_seen),
            "duplicates": sum(n - 1 for n in ids.values() if n > 1),
            "upstream_calls_total": len(calls),
            "upstream_calls_per_min": round(len(calls) / minutes, 1),
            "list_calls_per_min": round(len(lists) / minutes, 1),
            "detail_calls_total": len(details),
            "latency_p50_s": spread["p50"],
            "latency_p95_s": spread["p95"],
            "latency_max_s": spread["max"],
            "latency_mean_s": round(statistics.fmean(latencies), 2) if latencies else None,
            "detection_p50_s": h.spread(detection, digits=2)["p50"],
            "detection_p95_s": h.spread(detection, digits=2)["p95"],
            "delivery_p50_s": h.spread(delivery, digits=2)["p50"],
            "delivery_p95_s": h.spread(delivery, digits=2)["p95"],
            "elapsed_s": round(elapsed, 1),
            "cpu_s": meter.cpu,
            "other_load_share": meter.other_share,
        },
    )
    result.summary["latencies_s"] = [round(x, 3) for x in latencies]


def event_times(database_url: str) -> dict[str, float]:
    """When the bridge logged each conversation as an event (its poll saw it): splits the
    latency into detection (creation -> logged) and delivery (logged -> receipt)."""
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as db:
            rows = db.execute(sqlalchemy.select(Event.object_id, Event.recorded_at))
            return {object_id: at.timestamp() for object_id, at in rows}
    finally:
        engine.dispose()


def compare(args: argparse.Namespace, result: h.Result) -> None:
    run = result.rounds[0].metrics
    per_agent = args.agents * 60 / args.poll_interval
    per_subscriber = args.subscribers * 60 / args.poll_interval
    lists = run["list_calls_per_min"]
    p95 = run["latency_p95_s"]
    goal_p95 = args.poll_interval + 2
    received, expected = run["deliveries_received"], run["deliveries_expected"]
    n, a = args.subscribers, args.agents
    result.comparisons += [
        h.Comparison(f"fan-out, {n} hooks on {a} agents: list calls/min", lists, per_subscriber,
                     "/min", "each subscriber polling itself", h.ratio(lists, per_subscriber),
                     f"per agent: ~ agents x 60/interval = {per_agent:g} (<= 1.25 x)",
                     lists <= per_agent * 1.25),
        h.Comparison("fan-out: all upstream calls/min", run["upstream_calls_per_min"], None,
                     "/min", "", None, "(list + per-conversation detail reads)", None),
        h.Comparison("fan-out: delivery p95 (creation -> receipt)", p95, None, "s", "", None,
                     f"<= interval + 2 s = {goal_p95:g} s", p95 is not None and p95 <= goal_p95),
        h.Comparison("fan-out: deliveries received", float(received), float(expected), "",
                     "expected", h.ratio(received, expected), "all, duplicates "
                     f"{run['duplicates']}", received == expected),
    ]  # fmt: skip
    result.notes.append(
        f"list calls: {lists}/min against {per_agent:g} for one poll per agent per interval;"
        f" latency p95 = detection (creation -> the poll that logs it) {run['detection_p95_s']} s"
        f" + delivery (logged -> receipt) {run['delivery_p95_s']} s, at most"
    )
    result.summary.update(
        {
            "list_calls_per_min": lists,
            "upstream_calls_per_min": run["upstream_calls_per_min"],
            "latency_p50_s": run["latency_p50_s"],
            "latency_p95_s": p95,
            "latency_max_s": run["latency_max_s"],
            "detection_p95_s": run["detection_p95_s"],
            "delivery_p95_s": run["delivery_p95_s"],
            "deliveries_expected": expected,
            "deliveries_received": received,
            "duplicates": run["duplicates"],
            "other_load_share_max": run["other_load_share"],
        }
    )


if __name__ == "__main__":
    main()
