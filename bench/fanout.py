"""Fan-out benchmark: many REST-hook subscribers on a few agents.

Starts the simulator, the bridge (gunicorn + one worker) and a local receiver, subscribes
SUBSCRIBERS hooks spread over AGENTS agents, then creates one conversation per agent every few
seconds for DURATION seconds. Reports upstream calls per minute (from the simulator's request
log: they should scale with agents, not subscribers) and delivery latency (conversation created
-> hook received) p50/p95/max, plus missing or duplicated deliveries.

    .venv/bin/python bench/fanout.py [--subscribers 1000] [--agents 10] [--duration 120]
                                     [--poll-interval 15] [--redis]

Everything listens on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.testing import SimAdmin  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = BackloggedServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def start(
    stack: ExitStack, argv: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    handle = stack.enter_context(log.open("wb"))
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    stack.callback(lambda: _stop(proc))
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--poll-interval", type=float, default=15)
    parser.add_argument("--redis", action="store_true", help="queue and limiter on local Redis")
    args = parser.parse_args()

    python = str(ROOT / ".venv" / "bin" / "python")
    work = Path(tempfile.mkdtemp(prefix="zwb-fanout-"))
    sim_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "BRIDGE_ENV": "production",
        "BRIDGE_SECRET_KEY": secrets.token_urlsafe(48),
        "BRIDGE_VAR_DIR": str(work),
        "ZAPPWAY_BASE_URL": f"http://127.0.0.1:{sim_port}/api/v1",
        "BRIDGE_POLL_INTERVAL": str(args.poll_interval),
        "BRIDGE_ALLOW_PRIVATE_TARGETS": "true",
        "BRIDGE_LOG_LEVEL": "warning",
        "PORT": str(web_port),
    }
    if args.redis:
        env["REDIS_URL"] = "redis://127.0.0.1:6379/7"
        import redis

        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    receiver = Receiver()
    with ExitStack() as stack:
        stack.callback(receiver.close)
        start(stack, [python, "-m", "sim", "--port", str(sim_port)], env, work / "sim.log")
        wait_up(f"http://127.0.0.1:{sim_port}/__admin/settings")
        admin = SimAdmin(f"http://127.0.0.1:{sim_port}")
        org = admin.create_org("Fan-out", plan=100_000)
        key = admin.create_key(org["id"])
        agents = [admin.create_agent(org["id"], f"Agent {i}")["id"] for i in range(args.agents)]

        subprocess.run([python, "-m", "flask", "--app", "bridge", "migrate"], cwd=ROOT, env=env,
                       check=True, capture_output=True)  # fmt: skip
        gunicorn = str(ROOT / ".venv" / "bin" / "gunicorn")
        start(
            stack,
            [gunicorn, "-c", "gunicorn.conf.py", "bridge:create_app()"],
            env,
            work / "web.log",
        )
        start(stack, [python, "-m", "bridge.worker"], env, work / "worker.log")
        base = f"http://127.0.0.1:{web_port}"
        wait_up(f"{base}/healthz")
        bridge = httpx.Client(base_url=base, timeout=30)
        token = bridge.post("/v1/connections", json={"api_key": key, "plan": "100000"}).json()[
            "token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        for index in range(args.subscribers):
            agent = agents[index % len(agents)]
            target = f"http://127.0.0.1:{receiver.port}/hook/{index}"
            response = bridge.post(
                "/v1/hooks", headers=headers, json={"target_url": target, "agent_id": agent}
            )
            response.raise_for_status()
        for agent in agents:  # seed every watch so that only new conversations count
            bridge.get("/v1/triggers/new_conversation", headers=headers, params={"agent_id": agent})
        wait_for_worker_polls(admin)
        admin.clear_requests()
        plan = f"{args.subscribers} hooks on {len(agents)} agents"
        print(f"{plan}; creating conversations for {args.duration:.0f} s", flush=True)

        created: dict[str, float] = {}
        started = time.time()
        while time.time() - started < args.duration:
            for agent in agents:
                conversation = admin.create_conversation(
                    agent, messages=[{"from": "human", "text": "hi"}]
                )
                created[conversation["id"]] = time.time()
            time.sleep(args.poll_interval / 2)
        settle = args.poll_interval + 60  # the worker schedules polls per minute
        deadline = time.time() + settle
        expected = len(created) * (args.subscribers // len(agents))
        while time.time() < deadline and len(receiver.arrivals) < expected:
            time.sleep(1)
        report(admin, receiver, created, expected, time.time() - started, args)


def wait_for_worker_polls(admin: SimAdmin, timeout: float = 90) -> None:
    """Huey's periodic scheduler runs on minute boundaries: start once polling has begun."""
    admin.clear_requests()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any("/conversations" in call["path"] for call in admin.requests()):
            return
        time.sleep(0.5)
    raise SystemExit("the worker never polled the upstream")


def report(admin: SimAdmin, receiver: Receiver, created: dict[str, float], expected: int,
           elapsed: float, args: argparse.Namespace) -> None:  # fmt: skip
    calls = admin.requests()
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
    result = {
        "subscribers": args.subscribers,
        "agents": args.agents,
        "poll_interval_s": args.poll_interval,
        "conversations": len(created),
        "deliveries_expected": expected,
        "deliveries_received": len(first_seen),
        "duplicates": sum(n - 1 for n in ids.values() if n > 1),
        "upstream_calls_total": len(calls),
        "upstream_calls_per_min": round(len(calls) / minutes, 1),
        "list_calls_per_min": round(len(lists) / minutes, 1),
        "detail_calls_total": len(details),
        "latency_s": summary(latencies),
    }
    print(json.dumps(result, indent=2))


def summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None, "mean": None}

    def pick(q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 2)

    return {"p50": pick(0.5), "p95": pick(0.95), "max": round(values[-1], 2),
            "mean": round(statistics.fmean(values), 2)}  # fmt: skip


if __name__ == "__main__":
    main()
