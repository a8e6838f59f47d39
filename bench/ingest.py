"""Inbound CMS webhook benchmark: signed `POST /in/<token>` acks beside the `/healthz` floor,
then the worker's drain into ZappWay beside the same load sent as one call per event.

**Acks.** Starts the simulator and the bridge (gunicorn with `gunicorn.conf.py`), creates a
connection and one inbound source (`POST /v1/sources`), signs every webhook beforehand (each a
new document, so each is a new event), sends a warm-up, then alternates:

- **ingest**: `--requests` signed webhooks at `--concurrency` in flight, one connection each (as
  CMS senders do; `--keepalive` reuses them), every answer should be 202;
- **floor**: as many `GET /healthz` on the same gunicorn: what the server and the load client
  alone cost on this machine.

For each: acks/s, latency p50/p95/p99/max, CPU of each party (bridge CPU per ack), listen
overflows. `--py-spy` adds one profiled ingest run (not counted) and groups its samples.

**Drain** (unless `--no-drain`). A fresh bridge and database on a `--plan` (free: 60 calls/min)
connection receives `--drain-documents` webhooks; then `python -m bridge.worker` starts and the
run waits until nothing is pending. Reported against the design: upsert calls vs
ceil(documents / batch), the most calls in any 60 s vs the plan, the drain time vs the plan's
rate floor. **Per-event reference**: the same documents sent straight to the simulator as one
upsert call each (what a Zap per CMS event would do), on an unlimited org: its call count and
the time the plan would impose on it.

    .venv/bin/python -m bench.ingest [--backend sqlite|postgres] [--requests 5000]
        [--concurrency 50] [--rounds 2] [--provider wordpress|standard_webhooks|sanity]
        [--keepalive] [--plan free] [--batch-size 50] [--drain-documents N] [--no-drain]
        [--py-spy] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import harness as h
from bridge.config import normalise_database_url
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.signing import sign
from bridge.upstream.ratelimit import WINDOW_MS

PLAN_RPM = {"free": 60, "pro": 300}
RATE_WINDOW_S = math.ceil(WINDOW_MS / 1000)  # the limiter's sliding window per key (62 s)
CPU_GOAL_MS = {"sqlite": 0.7, "postgres": 1.0}
FLOOR_RATIO_GOAL = 0.3
PARAGRAPH = (
    "Opening hours change with the seasons: we open at eight on weekdays and at nine on "
    "Saturdays; on public holidays the caf\u00e9 stays closed. "
)
SECRETS_AND_RECIPE = ("active_secrets (", "_recipe (bridge/sync/ingest.py", "source_config.py")
INGEST_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("source lookup (find_by_digest)", ("find_by_digest (bridge/sync/sources.py",)),
    ("signing secrets + recipe", SECRETS_AND_RECIPE),
    ("signature check (HMAC)", ("bridge/sync/providers/verify.py",)),
    ("parse + map + HTML to text", ("bridge/sync/providers/",)),
    ("pool checkout + pre-ping", ("ack_connection (bridge/sync/store.py",)),
    ("store write (event, documents, claim)", ("bridge/sync/store.py",)),
    ("sync schedule (queue)", ("_schedule (bridge/sync/views.py", "huey/")),
    ("commit", ("Connection.commit (sqlalchemy", "do_commit (")),
    ("JSON (body, answer)", ("json/", "jsonify (flask")),
    ("ingest / route, other", ("bridge/sync/ingest.py", "receive (bridge/sync/views.py")),
    ("other SQL (sqlalchemy, drivers)", ("sqlalchemy/", "psycopg/", "sqlite3")),
    ("Flask / werkzeug", ("flask/", "werkzeug/")),
    ("gunicorn / gevent (HTTP server, sockets)", ("gunicorn/", "gevent/")),
)


# --- webhooks -----------------------------------------------------------------------------


def _text(size: int) -> str:
    return (PARAGRAPH * (size // len(PARAGRAPH) + 1))[:size]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Built = tuple[bytes, dict[str, str], str | None]


def wordpress(index: int, now: float, text: str) -> Built:
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


def standard_webhooks(index: int, now: float, text: str) -> Built:
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


def sanity(index: int, now: float, text: str) -> Built:
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


BUILDERS: dict[str, Callable[[int, float, str], Built]] = {
    "wordpress": wordpress,
    "standard_webhooks": standard_webhooks,
    "sanity": sanity,
}


def signed_requests(
    args: argparse.Namespace, secret: str, path: str, port: int, first: int, count: int
) -> list[bytes]:
    """Webhooks `first` .. `first + count - 1`, signed now (timestamped schemes allow 300 s)."""
    now = time.time()
    text = _text(args.text_bytes)
    out = []
    for index in range(first, first + count):
        body, extra, msg_id = BUILDERS[args.provider](index, now, text)
        kwargs: dict[str, Any] = {"now": now, "path": path, "headers": extra}
        if msg_id is not None:
            kwargs["msg_id"] = msg_id
        headers = sign(PROVIDERS[args.provider], secret, body, **kwargs)
        out.append(h.http_request("POST", path, port, body=body, keepalive=args.keepalive,
                                  headers={**extra, **headers}))  # fmt: skip
    return out


# --- main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    h.common_arguments(parser)
    add = parser.add_argument
    add("--requests", type=int, default=5000, help="timed webhooks per round (5000)")
    add("--concurrency", type=int, default=50, help="requests in flight (50)")
    add("--warmup", type=int, default=200, help="untimed webhooks first (200)")
    add("--only", choices=("ingest", "floor"), help="measure one target only")
    add("--provider", choices=tuple(BUILDERS), default="wordpress", help="sender (wordpress)")
    add("--text-bytes", type=int, default=1000, help="document text per webhook (1000)")
    add("--keepalive", action="store_true", help="reuse connections (default: one per webhook)")
    add("--worker-class", choices=("gevent", "gthread"), help="WEB_WORKER_CLASS")
    add("--workers", type=int, help="WEB_CONCURRENCY (default: gunicorn.conf.py's)")
    add("--no-drain", action="store_true", help="acks only")
    add("--drain-documents", type=int, help="webhooks for the drain (--warmup + --requests)")
    add("--plan", default="free", help="drain plan: free (60/min), pro (300/min) or N (free)")
    add("--batch-size", type=int, default=50, help="BRIDGE_SYNC_BATCH_SIZE (50)")
    add("--drain-timeout", type=float, default=600, help="give up on the drain after (600 s)")
    add("--py-spy", action="store_true", help="one extra profiled ingest run (needs root)")
    add("--quiet-wait", type=float, default=10, help="wait up to this long for a calm machine"
        " before each round (10 s)")  # fmt: skip
    add("--timeout", type=float, default=30, help="per-request client timeout (30 s)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    h.guard_run(args.max_seconds)
    result = h.Result(
        "ingest",
        args.backend,
        f"{args.requests} signed {args.provider} webhooks, {args.concurrency} in flight, beside"
        " GET /healthz; then the drain beside one call per event",
    )
    result.config = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "provider": args.provider,
        "keepalive": args.keepalive,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "plan": args.plan,
    }
    settings = {
        "WEB_WORKER_CLASS": args.worker_class,
        "WEB_CONCURRENCY": args.workers,
        "BRIDGE_SYNC_BATCH_SIZE": args.batch_size,
        **h.parse_env_items(args.env),
    }
    with h.workspace("ingest", args.keep) as work, h.Processes(work) as procs:
        env = h.base_env(work)
        sim = h.Simulator(procs, env, plain=True)
        with h.backend(args.backend, work, args.redis_db) as store:
            bridge = h.Bridge(procs, work, store, sim.api_url, settings, name="bridge-acks")
            try:
                acks(args, result, sim, bridge)
            finally:
                bridge.stop()
        if not args.no_drain:
            with h.backend(args.backend, work, args.redis_db) as store:
                bridge = h.Bridge(procs, work, store, sim.api_url, settings, name="bridge-drain")
                try:
                    result.summary["drain"] = drain(args, sim, bridge)
                finally:
                    bridge.stop()
            result.summary["per_event"] = per_event(args, sim, result.summary["drain"]["documents"])
    compare(args, result)
    result.print_table()
    panels = [
        h.Panel("requests answered per second", "per s", "acks_per_s"),
        h.Panel("p99 latency", "ms", "p99_ms"),
        h.Panel("server CPU per request", "ms", "server_cpu_ms_per_request",
                lines={"goal (bridge)": CPU_GOAL_MS[args.backend]}),
    ]  # fmt: skip
    result.write(args.out, panels, chart=not args.no_chart)


def source_for(bridge: h.Bridge, sim: h.Simulator, plan: str, provider: str) -> dict[str, Any]:
    """An org on `plan` with a key and datastore, a connection and an inbound source on it."""
    limit = PLAN_RPM.get(plan) or int(plan)
    org = sim.admin.create_org(f"Ingest {plan}", plan=plan if plan in PLAN_RPM else limit)
    key = sim.admin.create_key(org["id"])
    datastore = sim.admin.create_datastore(org["id"], "CMS pages")["id"]
    token = bridge.connect(key, plan)
    made = httpx.post(f"{bridge.url}/v1/sources", timeout=30,
                        headers={"Authorization": f"Bearer {token}"},
                        json={"provider": provider, "datastore_id": datastore})  # fmt: skip
    if made.status_code != 201:
        raise SystemExit(f"creating the source: {made.status_code} {made.text}")
    return dict(made.json())


def acks(args: argparse.Namespace, result: h.Result, sim: h.Simulator, bridge: h.Bridge) -> None:
    source = source_for(bridge, sim, "100000", args.provider)
    result.config["gunicorn"] = bridge.config
    result.config["backend"] = bridge.store.label
    path = source["inbound_path"]
    extra = args.requests if args.py_spy else 0
    total = args.warmup + args.rounds * args.requests + extra
    began = time.perf_counter()
    webhooks = signed_requests(args, source["secret"], path, bridge.port, 1, total)
    result.config["signing_s"] = round(time.perf_counter() - began, 2)
    floor = h.http_request("GET", "/healthz", bridge.port, keepalive=args.keepalive)
    if args.warmup:
        calls, _ = h.fire(bridge.port, webhooks[: args.warmup], args.concurrency, 30)
        floor_calls, _ = h.fire(bridge.port, [floor] * args.warmup, args.concurrency, 30)
        if any(c.status != 202 for c in calls) or any(c.status != 200 for c in floor_calls):
            bad = [c for c in calls if c.status != 202][:2]
            raise SystemExit(f"warm-up failed: {bad}\n{h.tail(bridge.web.log)}")
    parties: dict[str, Callable[[], list[int]]] = {
        "bridge": bridge.web.tree,
        "simulator": sim.proc.tree,
    }
    if bridge.store.redis_url:
        parties["postgres"] = lambda: h.pids_named("postgres")
        parties["redis"] = lambda: h.pids_named("redis-server")
    targets = [args.only] if args.only else ["ingest", "floor"]
    next_webhook = args.warmup
    sent = args.warmup
    for _ in range(args.rounds):
        for target in targets:
            if target == "ingest":
                batch = webhooks[next_webhook : next_webhook + args.requests]
                next_webhook += args.requests
            else:
                batch = [floor] * args.requests
            quiet = h.wait_quiet(args.quiet_wait) if args.quiet_wait else None
            workers = bridge.web_workers()
            per_worker = {pid: h.cpu_seconds([pid]) for pid in workers}
            overflows = h.listen_overflows()
            with h.CpuMeter(parties) as meter:
                calls, wall = h.fire(bridge.port, batch, args.concurrency, args.timeout)
            metrics = measure(calls, wall, meter, 202 if target == "ingest" else 200)
            metrics["cpu_per_web_worker_s"] = sorted(
                round(h.cpu_seconds([pid]) - before, 2) for pid, before in per_worker.items()
            )
            metrics["listen_overflows"] = h.listen_overflows() - overflows
            metrics["machine_share_before"] = quiet
            if target == "ingest":
                sent += metrics["acks"]
            result.add_round(target, {}, metrics)
    if "ingest" in targets:
        stored = document_states(bridge.store.database_url)
        result.summary["stored_documents"] = stored
        result.summary["stored_matches_acks"] = stored.get("pending", 0) == sent
    if args.py_spy:
        out = args.out / "profiles" / f"ingest-{args.backend}"
        shutil.rmtree(out, ignore_errors=True)
        batch = webhooks[next_webhook : next_webhook + args.requests]
        with h.Profiler(bridge.web_workers(), out) as spy:
            calls, wall = h.fire(bridge.port, batch, args.concurrency, args.timeout)
        profile = h.summarise_stacks(spy.stacks(), INGEST_GROUPS)
        profile["acks_per_s_under_profiler"] = round(len(calls) / wall, 1)
        profile["raw_stacks"] = str(out)
        result.summary["profile"] = profile
        print(f"  profile  : {profile['samples']} samples; exclusive groups:")
        for label, share in profile["groups_pct"].items():
            print(f"    {share:5.1f} %  {label}")


def measure(calls: list[h.Call], wall: float, meter: h.CpuMeter, ok: int) -> dict[str, Any]:
    good = [c for c in calls if c.status == ok]
    latency = h.spread([c.latency for c in calls], scale=1000, digits=1)
    odd = Counter(f"{c.status} {c.body[:100].decode(errors='replace')}" for c in calls
                  if c.status != ok)  # fmt: skip
    return {
        "requests": len(calls),
        "acks": len(good),
        "errors": len(calls) - len(good),
        "statuses": h.statuses(calls),
        "oddities": dict(odd.most_common(3)),
        "acks_per_s": round(len(good) / wall, 1),
        "wall_s": round(wall, 2),
        "p50_ms": latency["p50"],
        "p95_ms": latency["p95"],
        "p99_ms": latency["p99"],
        "max_ms": latency["max"],
        "cpu_s": meter.cpu,
        "server_cpu_ms_per_request": round(1000 * meter.cpu["bridge"] / max(len(good), 1), 3),
        "load_generator_ms_per_request": round(
            1000 * meter.cpu["load_generator"] / max(len(calls), 1), 3
        ),
        "other_load_share": meter.other_share,
    }


def document_states(url: str, source_id: str | None = None) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(normalise_database_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT state, count(*) FROM pending_documents GROUP BY state")
            ).all()
    finally:
        engine.dispose()
    return {str(state): int(count) for state, count in rows}


def drain(args: argparse.Namespace, sim: h.Simulator, bridge: h.Bridge) -> dict[str, Any]:
    """Webhooks into a fresh bridge on `--plan`, then the worker; until nothing is pending."""
    count = args.drain_documents or (args.warmup + args.requests)
    limit = PLAN_RPM.get(args.plan) or int(args.plan)
    source = source_for(bridge, sim, args.plan, args.provider)
    webhooks = signed_requests(
        args, source["secret"], source["inbound_path"], bridge.port, 1, count
    )
    calls, _ = h.fire(bridge.port, webhooks, args.concurrency, args.timeout)
    if any(c.status != 202 for c in calls):
        raise SystemExit(f"drain webhooks: {h.statuses(calls)}\n{h.tail(bridge.web.log)}")
    sim.admin.clear_requests()
    started = time.time()
    worker = bridge.start_worker()
    deadline = started + args.drain_timeout
    states: dict[str, int] = {}
    while time.time() < deadline:
        states = document_states(bridge.store.database_url)
        if states.get("pending", 0) == 0:
            break
        worker.check()
        time.sleep(0.25)
    finished = time.time()
    worker.stop()
    upserts = [c for c in sim.admin.requests()
               if c["method"] == "POST" and c["path"].endswith("/upsert")]  # fmt: skip
    at = sorted(c["at"] for c in upserts)
    needed = math.ceil(count / args.batch_size)
    out = {
        "documents": count,
        "plan": args.plan,
        "plan_limit_per_min": limit,
        "batch_size": args.batch_size,
        "states": states,
        "complete": states.get("pending", 0) == 0 and states.get("delivered", 0) == count,
        "drain_s": round(finished - started, 1),
        "upsert_calls": len(upserts),
        "upsert_calls_expected": needed,
        "upsert_statuses": dict(Counter(str(c["status"]) for c in upserts)),
        "first_call_after_s": round(at[0] - started, 1) if at else None,
        "last_call_after_s": round(at[-1] - started, 1) if at else None,
        "max_calls_per_60s": h.max_in_window(at),
        # the key's budget alone: `needed` calls at `limit` per window
        "rate_floor_s": rate_floor(needed, limit),
        "timeline_s": [round(t - started, 2) for t in at][:2000],
    }
    print(f"  drain    : {json.dumps({k: v for k, v in out.items() if k != 'timeline_s'})}")
    return out


def rate_floor(calls: int, per_minute: int) -> int:
    """Seconds the plan's budget alone imposes on `calls` calls (windows of the limiter's)."""
    return (math.ceil(calls / per_minute) - 1) * RATE_WINDOW_S if calls else 0


def per_event(args: argparse.Namespace, sim: h.Simulator, count: int) -> dict[str, Any]:
    """The same documents, each its own upsert call straight to the simulator (unlimited org)."""
    org = sim.admin.create_org("Per-event reference", plan=100_000)
    key = sim.admin.create_key(org["id"])
    datastore = sim.admin.create_datastore(org["id"], "Per event")["id"]
    text = _text(args.text_bytes)
    requests = [
        h.json_request(f"/api/v1/datastores/{datastore}/upsert", sim.port,
                       {"documents": [{"id": f"post-{i}", "name": f"Post {i}", "text": text,
                                       "metadata": {"source_url": f"https://example.com/post-{i}/"}}]},
                       {"Authorization": f"Bearer {key}"})
        for i in range(1, count + 1)
    ]  # fmt: skip
    sim.admin.clear_requests()
    calls, wall = h.fire(sim.port, requests, args.concurrency, args.timeout)
    limit = PLAN_RPM.get(args.plan) or int(args.plan)
    out = {
        "documents": count,
        "upsert_calls": len(calls),
        "statuses": h.statuses(calls),
        "unthrottled_s": round(wall, 1),
        "plan": args.plan,
        "rate_floor_s": rate_floor(len(calls), limit),
    }
    print(f"  per-event: {json.dumps(out)}")
    return out


def compare(args: argparse.Namespace, result: h.Result) -> None:
    acks_s = result.median("ingest", "acks_per_s")
    floor_s = result.median("floor", "acks_per_s")
    rate_ratio = result.pair_ratio("ingest", "floor", "acks_per_s")
    cpu = result.median("ingest", "server_cpu_ms_per_request")
    floor_cpu = result.median("floor", "server_cpu_ms_per_request")
    p99 = result.median("ingest", "p99_ms")
    floor_p99 = result.median("floor", "p99_ms")
    goal_cpu = CPU_GOAL_MS[args.backend]
    n = args.requests
    result.comparisons += [
        h.Comparison(f"ingest, {n} signed webhooks: acks/s", acks_s, floor_s, "/s",
                     "GET /healthz floor", rate_ratio, f">= {FLOOR_RATIO_GOAL} x the floor",
                     None if rate_ratio is None else rate_ratio >= FLOOR_RATIO_GOAL,
                     f"per pair: {result.pair_ratios('ingest', 'floor', 'acks_per_s')}"),
        h.Comparison("ingest: bridge CPU per ack", cpu, floor_cpu, "ms", "per /healthz",
                     result.pair_ratio("ingest", "floor", "server_cpu_ms_per_request"),
                     f"<= {goal_cpu} ms",
                     None if cpu is None else cpu <= goal_cpu),
        h.Comparison("ingest: p99 latency", p99, floor_p99, "ms", "/healthz",
                     result.pair_ratio("ingest", "floor", "p99_ms"), "(no goal)", None),
    ]  # fmt: skip
    drained = result.summary.get("drain")
    events = result.summary.get("per_event")
    if drained and events:
        docs, batch = drained["documents"], drained["batch_size"]
        calls, expected = drained["upsert_calls"], drained["upsert_calls_expected"]
        plan = f"{drained['plan']} plan ({drained['plan_limit_per_min']}/min)"
        result.comparisons += [
            h.Comparison(f"drain, {docs} documents: upstream upsert calls", float(calls),
                         float(events["upsert_calls"]), "", "one call per event",
                         h.ratio(calls, events["upsert_calls"]),
                         f"<= ceil({docs}/{batch}) = {expected}", calls <= expected and
                         drained["complete"]),
            h.Comparison(f"drain time, {plan}", drained["drain_s"],
                         float(events["rate_floor_s"]), "s", "one call per event: rate floor",
                         h.ratio(drained["drain_s"], events["rate_floor_s"]),
                         f"<= rate floor {drained['rate_floor_s']} s + 15 s",
                         drained["drain_s"] <= drained["rate_floor_s"] + 15),
            h.Comparison("drain: most upsert calls in any 60 s",
                         float(drained["max_calls_per_60s"]), None, "", "", None,
                         f"<= plan {drained['plan_limit_per_min']}",
                         drained["max_calls_per_60s"] <= drained["plan_limit_per_min"]),
        ]  # fmt: skip
    shares = [r.metrics["other_load_share"] for r in result.rounds]
    result.summary.update(
        {
            "acks_per_s": acks_s,
            "floor_per_s": floor_s,
            "acks_floor_ratio": rate_ratio,
            "bridge_cpu_ms_per_ack": cpu,
            "p99_ms": p99,
            "floor_p99_ms": floor_p99,
            "errors": sum(r.metrics["errors"] for r in result.rounds),
            "other_load_share_max": max(shares) if shares else None,
        }
    )
    if drained:
        result.notes.append(
            f"drain: {drained['documents']} documents in {drained['drain_s']} s, "
            f"{drained['upsert_calls']} upsert calls {drained['upsert_statuses']}, first after "
            f"{drained['first_call_after_s']} s, last after {drained['last_call_after_s']} s"
        )
    if events:
        result.notes.append(
            f"per-event reference: {events['upsert_calls']} calls straight to the simulator took "
            f"{events['unthrottled_s']} s unthrottled; on the {events['plan']} plan they would "
            f"need >= {events['rate_floor_s']} s"
        )


if __name__ == "__main__":
    main()
