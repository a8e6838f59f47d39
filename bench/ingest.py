"""Inbound CMS webhook ingest benchmark: signed `POST /in/<token>` acks, then the drain.

Starts the simulator (one org, key and datastore on the chosen plan), runs `flask --app bridge
migrate`, starts the bridge under gunicorn with `gunicorn.conf.py`, creates a connection and one
inbound source (`POST /v1/sources`), pre-signs every webhook (each a new document: a new id and
updated time, so each is a new event), sends a warm-up, then fires N requests at concurrency C and
reports acks/second, latency p50/p95/p99/max and status counts (every answer should be 202).
With `--drain` it then starts the worker (`python -m bridge.worker`) and measures the time until
every stored document is delivered to the simulator, the number of upstream upsert calls and the
most calls in any 60 s window against the plan's limit.

    .venv/bin/python bench/ingest.py [--requests 5000] [--concurrency 50] [--db sqlite|postgres]
        [--redis] [--worker-class gevent|gthread] [--workers W] [--threads T]
        [--provider wordpress|standard_webhooks|sanity] [--keepalive]
        [--drain] [--plan free|pro|N] [--batch-size 50] [--py-spy] [--keep]

The load generator is a minimal asyncio HTTP/1.1 client sending pre-built request bytes (a new
connection per webhook, as CMS senders do; `--keepalive` reuses C connections). Everything listens
on 127.0.0.1; every process started is stopped at the end (also on Ctrl-C or SIGTERM), a
PostgreSQL database is dropped, Redis db 9 is flushed, the temporary directory is removed unless
--keep, and the whole run is bounded (--max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from query_agent_load import (  # noqa: E402  (shared helpers of the bench scripts)
    HOST,
    bridge_env,
    cpu_seconds,
    descendants,
    free_port,
    gunicorn_settings,
    listen_overflows,
    postgres_database,
    start,
    stop,
    tail,
    wait_up,
)

from bridge.config import normalise_database_url  # noqa: E402
from bridge.sync.providers.providers import PROVIDERS  # noqa: E402
from bridge.sync.providers.signing import sign  # noqa: E402
from sim.testing import SimAdmin  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/9"
PLAN_RPM = {"free": 60, "pro": 300}
UPSERT_SUFFIX = "/upsert"
PARAGRAPH = (
    "Opening hours change with the seasons: we open at eight on weekdays and at nine on "
    "Saturdays; on public holidays the caf\u00e9 stays closed. "
)


# --- webhooks -----------------------------------------------------------------------------


def _text(size: int) -> str:
    return (PARAGRAPH * (size // len(PARAGRAPH) + 1))[:size]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wordpress(index: int, now: float, text: str) -> tuple[bytes, dict[str, str], str | None]:
    """A WP Webhooks `post_update` of post `index` (PHP escapes `/` like the real sender)."""
    modified = datetime.fromtimestamp(now - 60 + index % 60, UTC).strftime("%Y-%m-%d %H:%M:%S")
    body = {
        "post_id": index,
        "post": {
            "ID": index,
            "post_author": "1",
            "post_date_gmt": modified,
            "post_content": f"<!-- wp:paragraph -->\n<p>{text}</p>\n<!-- /wp:paragraph -->",
            "post_title": f"Post {index}",
            "post_excerpt": "",
            "post_status": "publish",
            "post_name": f"post-{index}",
            "post_modified_gmt": modified,
            "guid": f"https://example.com/?p={index}",
            "post_type": "post",
        },
        "post_meta": [],
        "post_permalink": f"https://example.com/post-{index}/",
    }
    raw = json.dumps(body, separators=(",", ":")).replace("/", "\\/").encode()
    return raw, {"X-WP-Webhook-Name": "post_update"}, None


def standard_webhooks(
    index: int, now: float, text: str
) -> tuple[bytes, dict[str, str], str | None]:
    body = {
        "type": "article.updated",
        "timestamp": _iso(now),
        "data": {
            "id": f"art_{index}",
            "title": f"Article {index}",
            "text": f"<p>{text}</p>",
            "url": f"https://example.com/a/{index}",
            "updated_at": _iso(now - 60),
        },
    }
    return json.dumps(body).encode(), {}, f"msg_bench_{index}"


def sanity(index: int, now: float, text: str) -> tuple[bytes, dict[str, str], str | None]:
    body = {
        "_id": f"post-{index}",
        "_type": "post",
        "_rev": f"rev{index}",
        "_updatedAt": _iso(now - 60),
        "title": f"Sanity post {index}",
        "text": text,
        "url": f"https://example.com/posts/{index}",
        "slug": f"post-{index}",
        "operation": "update",
    }
    headers = {
        "idempotency-key": f"idem_bench_{index}",
        "sanity-project-id": "abc123",
        "sanity-dataset": "production",
    }
    return json.dumps(body).encode(), headers, None


BUILDERS: dict[str, Callable[[int, float, str], tuple[bytes, dict[str, str], str | None]]] = {
    "wordpress": wordpress,
    "standard_webhooks": standard_webhooks,
    "sanity": sanity,
}


def signed_requests(
    provider: str, secret: str, path: str, port: int, count: int, keepalive: bool, text_bytes: int
) -> list[bytes]:
    """Every request's bytes, signed now (timestamped schemes allow 300 s: enough for a run)."""
    now = time.time()
    text = _text(text_bytes)
    out = []
    for index in range(1, count + 1):
        body, extra, msg_id = BUILDERS[provider](index, now, text)
        kwargs: dict[str, Any] = {"now": now, "path": path, "headers": extra}
        if msg_id is not None:
            kwargs["msg_id"] = msg_id
        headers = sign(PROVIDERS[provider], secret, body, **kwargs)
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: {HOST}:{port}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: " + ("keep-alive" if keepalive else "close"),
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        out.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return out


# --- the load -----------------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server closes the connection (Content-Length bodies only)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
        elif name == b"transfer-encoding":
            return status, await reader.read(), True
    return status, await reader.readexactly(length), close


async def fire(
    port: int, requests: list[bytes], concurrency: int, keepalive: bool, timeout: float
) -> tuple[list[tuple[float, float, int | str, bytes]], float]:
    """Send `requests` over `concurrency` lanes; return (start, latency, status, body) and wall."""
    records: list[tuple[float, float, int | str, bytes]] = [(0.0, 0.0, "unsent", b"")] * len(
        requests
    )
    cursor = 0

    async def lane() -> None:
        nonlocal cursor
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while cursor < len(requests):
            index = cursor
            cursor += 1
            began = time.perf_counter()
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                writer.write(requests[index])
                status, payload, close = await asyncio.wait_for(read_response(reader), timeout)
            except (OSError, EOFError, TimeoutError, ValueError, IndexError) as exc:
                records[index] = (began, time.perf_counter() - began, type(exc).__name__, b"")
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            records[index] = (began, time.perf_counter() - began, status, payload)
            if close or not keepalive:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return records, time.perf_counter() - started


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values, in milliseconds."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return round(ordered[rank - 1] * 1000, 1)


def max_in_window(times: list[float], window: float = 60.0) -> int:
    """The most events in any `window`-second interval."""
    ordered, best, low = sorted(times), 0, 0
    for high, at in enumerate(ordered):
        while at - ordered[low] >= window:
            low += 1
        best = max(best, high - low + 1)
    return best


# --- CPU of the other parties and profiles ------------------------------------------------


def pids_named(*names: str) -> list[int]:
    """Every process whose command name is one of `names` (postgres backends, redis-server)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm in names:
                found.append(int(entry))
    return found


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit_s: float, threshold: float = 0.15) -> float:
    """Wait (up to `limit_s`) until other processes use < `threshold` of the machine for 2 s."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + limit_s
    while True:
        before = machine_busy_s()
        time.sleep(2)
        share = (machine_busy_s() - before) / (2 * cores)
        if share < threshold or time.monotonic() > deadline:
            return share


def start_profiles(pids: list[int], work: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    py_spy = str(ROOT / ".venv" / "bin" / "py-spy")
    out = []
    for pid in pids:
        path = work / f"py-spy-{pid}.txt"
        argv = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--nonblocking",
                "--format", "raw", "--output", str(path)]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append((proc, path))
    time.sleep(1.0)  # py-spy attaches
    return out


def finish_profiles(profiles: list[tuple[subprocess.Popen[bytes], Path]]) -> dict[str, Any]:
    """Stop py-spy and summarise its collapsed stacks: share of samples per marker."""
    for proc, _path in profiles:
        proc.send_signal(signal.SIGINT)
    stacks: Counter[str] = Counter()
    for proc, path in profiles:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                stack, _, count = line.rpartition(" ")
                if count.isdigit():
                    stacks[stack] += int(count)
    total = sum(stacks.values()) or 1
    markers = {
        "sqlite3 execute/commit (C)": ("(sqlite3", "do_execute (sqlalchemy", "do_commit ("),
        "sqlalchemy (all)": ("sqlalchemy/",),
        "psycopg (all)": ("psycopg/",),
        "secrets (active_secrets)": ("active_secrets (bridge/sources.py",),
        "verify (HMAC)": ("verify (bridge/inbound/verify.py",),
        "map_event": ("map_event (bridge/inbound/mapping.py",),
        "delivery_key": ("delivery_key (bridge/inbound/mapping.py",),
        "resolve(config)": ("resolve (bridge/source_config.py",),
        "find_by_token": ("find_by_token (bridge/sources.py",),
        "write_event (event, documents, claim)": ("write_event (bridge/inbound_store.py",),
        "claim_sync (SQLite's separate claim)": ("claim_sync (bridge/syncer.py",),
        "pool checkout + pre-ping": ("ack_connection (bridge/inbound_store.py",),
        "commit (route)": ("receive (bridge/api_sources.py",),
        "schedule sync (huey enqueue)": ("_schedule (bridge/api_sources.py",),
        "ingest() total": ("ingest (bridge/ingest.py",),
        "receive() route total": ("receive (bridge/api_sources.py",),
        "gunicorn access log": ("access (gunicorn/glogging.py",),
    }
    shares = {}
    for label, needles in markers.items():
        hit = sum(n for stack, n in stacks.items() if any(x in stack for x in needles))
        shares[label] = round(100 * hit / total, 1)
    # the commit inside receive(): stacks through receive that end in a commit
    commit = sum(
        n for s, n in stacks.items() if "receive (bridge/api_sources.py" in s and "commit (" in s
    )
    shares["commit (route)"] = round(100 * commit / total, 1)
    own: Counter[str] = Counter()
    for stack, n in stacks.items():
        own[stack.rsplit(";", 1)[-1]] += n
    return {
        "samples": total,
        "share_pct": shares,
        "top_self": [(frame[:90], round(100 * n / total, 1)) for frame, n in own.most_common(12)],
    }


# --- main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--requests", type=int, default=5000, help="timed webhooks (5000)")
    add("--concurrency", type=int, default=50, help="requests in flight (50)")
    add("--warmup", type=int, default=200, help="untimed webhooks first (200); also drained")
    add("--db", choices=("sqlite", "postgres"), default="sqlite", help="database (sqlite)")
    add("--redis", action="store_true", help=f"queue and rate limiter on {REDIS_URL}")
    add("--worker-class", choices=("gevent", "gthread"), help="WEB_WORKER_CLASS")
    add("--workers", type=int, help="WEB_CONCURRENCY (default: gunicorn.conf.py's)")
    add("--threads", type=int, help="WEB_THREADS, gthread only")
    add("--worker-connections", type=int, help="WEB_WORKER_CONNECTIONS, gevent only")
    add("--provider", choices=tuple(BUILDERS), default="wordpress", help="sender (wordpress)")
    add("--text-bytes", type=int, default=1000, help="document text per webhook (1000)")
    add("--keepalive", action="store_true", help="reuse C connections (default: one per webhook)")
    add("--floor", action="store_true", help="GET /healthz instead: the server + client floor")
    add("--drain", action="store_true", help="then start the worker and measure the drain")
    add("--plan", default="free", help="free (60/min), pro (300/min) or N per minute (free)")
    add("--batch-size", type=int, default=50, help="BRIDGE_SYNC_BATCH_SIZE (50)")
    add("--drain-timeout", type=float, default=600, help="give up on the drain after (600 s)")
    add("--py-spy", action="store_true", help="py-spy record every web worker during the burst")
    add(
        "--quiet-wait",
        type=float,
        default=60,
        help="wait up to this long for the machine to be idle before the burst (60 s; 0: no)",
    )
    add("--timeout", type=float, default=30, help="per-request client timeout (30 s)")
    add("--max-seconds", type=float, default=1200, help="hard cap on the whole run (1200)")
    add("--keep", action="store_true", help="keep the temporary directory (logs, profiles)")
    add("--env", action="append", default=[], metavar="NAME=VALUE", help="extra bridge env")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"gave up after {args.max_seconds:.0f} s"))
    signal.alarm(int(args.max_seconds))
    limit = PLAN_RPM.get(args.plan) or int(args.plan)
    python = str(ROOT / ".venv" / "bin" / "python")
    work = Path(tempfile.mkdtemp(prefix="zwb-ingest-"))
    sim_port, web_port = free_port(), free_port()
    env = bridge_env(
        args, work, sim_port, web_port, REDIS_URL, BRIDGE_SYNC_BATCH_SIZE=args.batch_size
    )
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(subprocess.run, ["rm", "-rf", str(work)], check=False)
        if args.db == "postgres":
            env["DATABASE_URL"] = stack.enter_context(postgres_database())
        if args.redis:
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
            stack.callback(lambda: redis.Redis.from_url(REDIS_URL).flushdb())

        sim_log = work / "sim.log"
        sim = start(
            stack, [python, "-m", "sim", "--host", HOST, "--port", str(sim_port)], env, sim_log
        )
        wait_up(f"http://{HOST}:{sim_port}/__admin/settings", sim, sim_log)
        admin = SimAdmin(f"http://{HOST}:{sim_port}")
        org = admin.create_org("Ingest bench", plan=args.plan if args.plan in PLAN_RPM else limit)
        api_key = admin.create_key(org["id"])
        datastore_id = admin.create_datastore(org["id"], "CMS pages")["id"]

        config = gunicorn_settings(env)
        subprocess.run([python, "-m", "flask", "--app", "bridge", "migrate"], cwd=ROOT, env=env,
                       check=True, capture_output=True)  # fmt: skip
        web_log = work / "web.log"
        gunicorn = str(ROOT / ".venv" / "bin" / "gunicorn")
        web = start(
            stack, [gunicorn, "-c", "gunicorn.conf.py", "bridge:create_app()"], env, web_log
        )
        base = f"http://{HOST}:{web_port}"
        wait_up(f"{base}/healthz", web, web_log)
        bridge = httpx.Client(base_url=base, timeout=30)
        created = bridge.post("/v1/connections", json={"api_key": api_key, "plan": args.plan})
        if created.status_code != 201:
            raise SystemExit(f"creating the connection: {created.status_code} {created.text}")
        auth = {"Authorization": f"Bearer {created.json()['token']}"}
        made = bridge.post(
            "/v1/sources",
            headers=auth,
            json={"provider": args.provider, "datastore_id": datastore_id},
        )
        if made.status_code != 201:
            raise SystemExit(f"creating the source: {made.status_code} {made.text}")
        source = made.json()

        total = args.warmup + args.requests
        began = time.perf_counter()
        requests = signed_requests(args.provider, source["secret"], source["inbound_path"],
                                   web_port, total, args.keepalive, args.text_bytes)  # fmt: skip
        signing_s = time.perf_counter() - began
        if args.floor:
            connection = "keep-alive" if args.keepalive else "close"
            floor = f"GET /healthz HTTP/1.1\r\nHost: {HOST}:{web_port}\r\nConnection: {connection}"
            requests = [(floor + "\r\n\r\n").encode()] * total
        ok = 200 if args.floor else 202
        if args.warmup:
            warm, _ = asyncio.run(
                fire(web_port, requests[: args.warmup], args.concurrency, args.keepalive, 30)
            )
            bad = [r for r in warm if r[2] != ok]
            if bad:
                raise SystemExit(f"warm-up failed: {bad[:3]}\n{tail(web_log)}")

        if args.quiet_wait:
            wait_quiet(args.quiet_wait)
        workers = [pid for pid in descendants(web.pid) if pid != web.pid]
        profiles = start_profiles(workers, work) if args.py_spy else []
        overflows = listen_overflows()
        tree = descendants(web.pid)
        others = {}
        if args.db == "postgres":
            others["postgres"] = pids_named("postgres")
        if args.redis:
            others["redis"] = pids_named("redis-server")
        cpu_before = {
            "bridge": cpu_seconds(tree),
            "simulator": cpu_seconds([sim.pid]),
            **{name: cpu_seconds(pids) for name, pids in others.items()},
            "load_generator": time.process_time(),
            "machine": machine_busy_s(),
        }
        workers_cpu = {pid: cpu_seconds([pid]) for pid in workers}
        records, wall = asyncio.run(
            fire(web_port, requests[args.warmup :], args.concurrency, args.keepalive, args.timeout)
        )
        cpu_after = {
            "bridge": cpu_seconds(tree),
            "simulator": cpu_seconds([sim.pid]),
            **{name: cpu_seconds(pids) for name, pids in others.items()},
            "load_generator": time.process_time(),
            "machine": machine_busy_s(),
        }
        cpu = {name: round(cpu_after[name] - cpu_before[name], 2) for name in cpu_before}
        # everything else on the machine during the burst (other jobs skew the figures)
        cpu["other"] = round(cpu.pop("machine") - sum(cpu.values()), 2)
        cpu_workers = sorted(
            round(cpu_seconds([pid]) - before, 2) for pid, before in workers_cpu.items()
        )
        overflows = listen_overflows() - overflows
        profile = finish_profiles(profiles) if profiles else None

        engine_url = normalise_database_url(env["DATABASE_URL"])
        stored = document_states(engine_url)
        drain = None
        if args.drain:
            admin.clear_requests()
            drain = measure_drain(stack, python, env, work, admin, engine_url, total, limit, args)
        report(args, config, env, records, wall, signing_s, cpu, cpu_workers, overflows, stored,
               drain, profile, limit, web_log, work)  # fmt: skip


def document_states(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT state, count(*) FROM pending_documents GROUP BY state")
            ).all()
    finally:
        engine.dispose()
    return {str(state): int(count) for state, count in rows}


def measure_drain(
    stack: ExitStack, python: str, env: dict[str, str], work: Path, admin: SimAdmin,
    url: str, total: int, limit: int, args: argparse.Namespace,
) -> dict[str, Any]:  # fmt: skip
    """Start the worker; wait until every document is delivered (or dead, or the timeout)."""
    worker_log = work / "worker.log"
    started = time.time()
    worker = start(stack, [python, "-m", "bridge.worker"], env, worker_log)
    deadline = started + args.drain_timeout
    states: dict[str, int] = {}
    while time.time() < deadline:
        states = document_states(url)
        if states.get("pending", 0) == 0:
            break
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited ({worker.returncode}):\n{tail(worker_log)}")
        time.sleep(0.25)
    finished = time.time()
    stop(worker)
    calls = [
        c for c in admin.requests() if c["method"] == "POST" and c["path"].endswith(UPSERT_SUFFIX)
    ]
    at = sorted(c["at"] for c in calls)
    needed = math.ceil(total / args.batch_size)
    return {
        "documents": total,
        "states": states,
        "drain_s": round(finished - started, 1),
        "complete": states.get("pending", 0) == 0 and states.get("delivered", 0) == total,
        "upsert_calls": len(calls),
        "upsert_calls_expected_max": needed,
        "upsert_statuses": dict(Counter(str(c["status"]) for c in calls)),
        "first_call_after_s": round(at[0] - started, 1) if at else None,
        "last_call_after_s": round(at[-1] - started, 1) if at else None,
        "max_calls_per_60s": max_in_window(at),
        "plan_limit_per_min": limit,
        # the key's budget alone: `needed` calls at `limit` per 61 s window (bridge/ratelimit.py)
        "rate_floor_s": (math.ceil(needed / limit) - 1) * 61,
    }


def report(
    args: argparse.Namespace, config: dict[str, Any], env: dict[str, str],
    records: list[tuple[float, float, int | str, bytes]], wall: float, signing_s: float,
    cpu: dict[str, float], cpu_workers: list[float], overflows: int, stored: dict[str, int],
    drain: dict[str, Any] | None, profile: dict[str, Any] | None, limit: int, web_log: Path,
    work: Path,
) -> None:  # fmt: skip
    ok = 200 if args.floor else 202
    statuses = Counter(str(r[2]) for r in records)
    latencies = sorted(r[1] for r in records)
    first = min(r[0] for r in records)
    per_second = Counter(int(r[0] + r[1] - first) for r in records if r[2] == ok)
    full_seconds = [per_second[s] for s in range(int(wall))]  # whole seconds of the burst
    odd = [r for r in records if r[2] != ok]
    oddities = Counter(f"{r[2]} {r[3][:120].decode(errors='replace')}" for r in odd)
    log_errors = []
    if web_log.exists():
        pattern = re.compile(r"\b(ERROR|CRITICAL|Traceback|WORKER TIMEOUT)\b")
        log_errors = [line for line in web_log.read_text(errors="replace").splitlines()
                      if pattern.search(line)]  # fmt: skip
    gevent = config.get("worker_class") == "gevent"
    acks = statuses.get(str(ok), 0)
    summary: dict[str, Any] = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "provider": "floor: GET /healthz" if args.floor else args.provider,
        "keepalive": args.keepalive,
        "database": args.db,
        "queue_limiter": "redis" if args.redis else args.db,
        "worker_class": config.get("worker_class"),
        "workers": config.get("workers"),
        "threads": None if gevent else config.get("threads"),
        "acks_per_s": round(acks / wall, 1),
        "wall_s": round(wall, 2),
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": round(latencies[-1] * 1000, 1),
        "slowest_second_acks": min(full_seconds) if full_seconds else None,
        "statuses": dict(statuses),
        "stored": stored,
        "cpu_s": cpu,
        "cpu_per_web_worker_s": cpu_workers,
        "bridge_cpu_ms_per_ack": round(1000 * cpu["bridge"] / max(acks, 1), 2),
        "other_load_share": round(cpu["other"] / ((os.cpu_count() or 1) * wall), 2),
        "listen_overflows": overflows,
        "log_error_lines": len(log_errors),
        "drain": drain,
        "profile": profile,
    }
    extra = {k: v for k, v in env.items() if k.startswith(("WEB_", "BRIDGE_SYNC"))}
    what = "GET /healthz (floor)" if args.floor else f"signed {args.provider} webhooks"
    print(
        f"ingest x {args.requests} {what}, {args.concurrency} in flight,"
        f" {'keep-alive' if args.keepalive else 'one connection per webhook'}"
        f" (+{args.warmup} warm-up; signed beforehand in {signing_s:.1f} s)"
    )
    print(
        f"  config   : {summary['worker_class']} workers={summary['workers']}"
        f" threads={summary['threads']} database={args.db} queue/limiter="
        f"{summary['queue_limiter']} {extra}"
    )
    print(
        f"  acks     : {summary['acks_per_s']}/s ({acks} in {wall:.2f} s; slowest second"
        f" {summary['slowest_second_acks']})"
    )
    print(
        "  latency  : p50 {p50_ms} ms  p95 {p95_ms} ms  p99 {p99_ms} ms  max {max_ms} ms".format(
            **summary
        )
    )
    print(f"  statuses : {dict(statuses)}   stored documents: {stored}")
    for line, count in oddities.most_common(5):
        print(f"    {count} x {line}")
    cores = os.cpu_count() or 1
    print(
        f"  cpu      : {', '.join(f'{k} {v} s' for k, v in cpu.items())} "
        f"({cores} cores x {wall:.1f} s = {cores * wall:.1f} s); bridge"
        f" {summary['bridge_cpu_ms_per_ack']} ms per ack; per web worker {cpu_workers} s"
    )
    print(f"  kernel   : {overflows} listen-queue overflows")
    if summary["other_load_share"] > 0.1:
        print(
            f"  WARNING  : other processes used {summary['other_load_share']:.0%} of the"
            " machine during the burst: the figures are skewed"
        )
    if drain is not None:
        print(
            "  drain    : {documents} documents in {drain_s} s ({states}); {upsert_calls} upsert"
            " calls (<= {upsert_calls_expected_max} expected, statuses {upsert_statuses}); first"
            " after {first_call_after_s} s, last after {last_call_after_s} s; max"
            " {max_calls_per_60s} calls in any 60 s vs plan {plan_limit_per_min}/min (rate floor"
            " {rate_floor_s} s)".format(**drain)
        )
    if profile is not None:
        print(f"  profile  : {profile['samples']} samples, % of samples whose stack includes:")
        for label, share in profile["share_pct"].items():
            print(f"    {share:5.1f}  {label}")
        print("    top self frames:")
        for frame, share in profile["top_self"]:
            print(f"    {share:5.1f}  {frame}")
    if log_errors:
        print(f"  web log  : {len(log_errors)} error lines, first ones:")
        for line in log_errors[:5]:
            print(f"    {line[:200]}")
    if args.keep:
        print(f"  logs     : {work}")
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    main()
