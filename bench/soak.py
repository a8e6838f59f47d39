"""Fault-injection soak: the whole bridge keeping its promises while everything goes wrong.

Two gunicorn web servers and two `python -m bridge.worker` share one PostgreSQL database (a
throw-away `soak_<hex>` created next to `test`, dropped at the end) and one Redis database
(`--redis-db`, 7: the queue and the rate budgets; flushed before and after), with the simulator
as ZappWay. At the same time:

- **CMS**: signed WordPress, Standard Webhooks and Sanity webhooks for `docs` documents each
  (1-4 versions, a quarter deleted, some delivered twice, versions shuffled), sent by a pool
  that retries like a CMS (until a 2xx, re-signing each attempt) to either web server;
- **hooks**: conversations created on two agents; five subscribers (loopback receivers that
  record each `webhook-id`) must each get every conversation of their agent;
- **actions**: `query_agent` with and without `Idempotency-Key`, each keyed one replayed (on
  either server) and compared with its first answer;
- **upstream faults**: ~30 % of calls answered 500/502/503, bursts of 429 with Retry-After,
  5 s stalls, one key revoked mid-run;
- **process faults**, aimed at the windows that matter: a connection reset after ZappWay applied
  a first upsert, then that post's delete; both workers SIGKILLed while a first upsert is in
  flight (holding the sync marker), then the delete, then a restart; the worker SIGKILLed
  between a hook POST and its record; then a web server SIGKILLed mid-request and restarted,
  Redis flushed (FLUSHDB of our database only: the "restart" a shared server allows),
  `pg_terminate_backend` on our database's connections, a worker SIGKILLed and restarted.

After each fault a canary document is sent (on a connection of its own whose key the workload's
upstream faults spare, so that it measures the bridge, not the backlog); the time until it is in
ZappWay is the recovery time. When the load phase ends the upstream faults are cleared and the
run waits (bounded) until everything converged, then compares and reports (`soak_checks.py`
decides), writes `bench/results/soak-<profile>.json` and its section of `bench/SOAK.md`, and
exits 1 when anything was lost or a limit was crossed.

    .venv/bin/python -m bench.soak [--profile short|full] [--redis-db 7] [--keep]

`make soak-short` (~4 min on 2 CPUs) and `make soak` (the full profile, <= 20 min).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import secrets
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench import harness as h
from bench import soak_checks as checks
from bench.ingest import document_states
from bridge.config import normalise_database_url
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.signing import sign
from sim.reqlog import key_hash

PROVIDER_KEYS = ("wordpress", "standard_webhooks", "sanity")
PLANS = {"free": 60, "pro": 300}
SOAK_MD = h.ROOT / "bench" / "SOAK.md"
FILLER = "Opening hours change with the seasons; the cafe stays closed on public holidays."


@dataclass(frozen=True)
class Profile:
    docs: int  # documents per provider
    load_s: float  # seconds of workload and upstream faults
    settle_s: float  # the longest wait for convergence afterwards
    conversation_every_s: float
    action_every_s: float
    senders: int
    faults: tuple[str, ...]  # in order, each `fault_gap_s` after the previous one ended
    fault_gap_s: float
    max_seconds: float


WINDOWS = ("window_kill_mid_hook", "window_kill_mid_upsert", "window_reset_then_delete")
# The Redis flush comes last: the bridge then holds every key for one rate window (it cannot
# know what the lost budgets held), which would otherwise lengthen the next faults' recovery.
GENERIC = ("kill_web", "pg_terminate", "kill_worker", "flush_redis")
PROGRESS_S = 90.0  # the settle phase waits past its time while the pending count fell this recently
SETTLE_MARGIN_S = 120.0  # of the run's bound, kept for the report and the clean-up
PROFILES = {
    "short": Profile(
        docs=40,
        load_s=100,
        settle_s=100,
        conversation_every_s=6,
        action_every_s=0.5,
        senders=4,
        faults=(*WINDOWS, "revoke_key", *GENERIC),
        fault_gap_s=6,
        max_seconds=360,
    ),
    "full": Profile(
        docs=400,
        load_s=450,
        settle_s=240,
        conversation_every_s=5,
        action_every_s=0.3,
        senders=6,
        faults=(*WINDOWS, "revoke_key", *GENERIC, *WINDOWS, *GENERIC),
        fault_gap_s=25,
        max_seconds=1200,
    ),
}
BRIDGE_SETTINGS = {
    "WEB_CONCURRENCY": 1,  # two servers of one process each: the "2 web processes"
    "BRIDGE_POLL_INTERVAL": 5,
    "BRIDGE_ALLOW_PRIVATE_TARGETS": "true",
    "BRIDGE_SYNC_BATCH_SIZE": 20,  # keeps an upsert body under the simulator's 10 KB log cap
    "BRIDGE_SYNC_STALE_AFTER": 30,  # production: 120 s; the soak is minutes long
    "BRIDGE_WORKER_THREADS": 8,
    "BRIDGE_LOG_LEVEL": "warning",
}


def now_s() -> float:
    return time.time()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- CMS events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CmsEvent:
    """One webhook to send: provider, document, operation, version, and what the bridge will
    order it by (`checks.SentEvent.order`)."""

    provider: str
    doc_key: str
    cms_id: str
    op: str
    version: int
    order: float
    delivery: str  # the CMS's delivery id: a repeated delivery reuses it


def plan_events(docs: int, base: float, rng: random.Random) -> list[CmsEvent]:
    """Every document's versions, deletes and repeats, shuffled together."""
    events: list[CmsEvent] = []
    for provider in PROVIDER_KEYS:
        for index in range(docs):
            cms_id, key = f"{index}", f"{provider}-{index}"
            versions = rng.randint(1, 4)
            mine = [
                CmsEvent(provider, key, cms_id, "upsert", v, base + v * 60, f"{key}-v{v}")
                for v in range(1, versions + 1)
            ]
            if rng.random() < 0.25:
                order = base + versions * 60 + 30 if provider == "standard_webhooks" else 0
                mine.append(
                    CmsEvent(
                        provider,
                        key,
                        cms_id,
                        "delete",
                        0,
                        order or checks.DELETE_WINS,
                        f"{key}-del",
                    )
                )
                if provider == "standard_webhooks" and rng.random() < 0.3:
                    v = versions + 1  # published again after the delete: it must come back
                    mine.append(
                        CmsEvent(provider, key, cms_id, "upsert", v, base + v * 60, f"{key}-v{v}")
                    )
            repeats = [e for e in mine if rng.random() < 0.2]
            events += mine + repeats
    rng.shuffle(events)
    return events


def webhook(event: CmsEvent, base: float) -> tuple[bytes, dict[str, str], str | None]:
    """The body, extra headers and delivery id of one event as its CMS would send it."""
    text = f"{checks.marker(event.doc_key, event.version)} {FILLER}"
    modified = base + event.version * 60 if event.op == "upsert" else event.order
    if event.provider == "wordpress":
        stamp = datetime.fromtimestamp(modified if event.op == "upsert" else base, UTC).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        post = {
            "ID": int(event.cms_id),
            "post_title": f"Soak {event.doc_key}",
            "post_content": f"<p>{text}</p>",
            "post_status": "publish" if event.op == "upsert" else "trash",
            "post_modified_gmt": stamp,
            "post_type": "post",
            "post_name": event.doc_key,
        }
        body = {
            "post_id": int(event.cms_id),
            "post": post,
            "post_meta": [],
            "post_permalink": f"https://example.com/{event.doc_key}/",
        }
        name = "post_update" if event.op == "upsert" else "post_delete"
        return json.dumps(body).encode(), {"X-WP-Webhook-Name": name}, None
    if event.provider == "standard_webhooks":
        kind = "article.updated" if event.op == "upsert" else "article.deleted"
        data = {
            "id": event.cms_id,
            "title": f"Soak {event.doc_key}",
            "text": f"<p>{text}</p>",
            "url": f"https://example.com/a/{event.doc_key}",
            "updated_at": iso(modified),
        }
        body = {"type": kind, "timestamp": iso(modified), "data": data}
        return json.dumps(body).encode(), {}, f"msg_{event.delivery}"
    operation = "update" if event.op == "upsert" else "delete"
    body = {
        "_id": event.cms_id,
        "_type": "post",
        "_rev": event.delivery,
        "_updatedAt": iso(modified if event.op == "upsert" else base),
        "title": f"Soak {event.doc_key}",
        "text": text,
        "url": f"https://example.com/s/{event.doc_key}",
        "slug": event.doc_key,
        "operation": operation,
    }
    return json.dumps(body).encode(), {"idempotency-key": f"idem_{event.delivery}"}, None


# --- hook receivers -----------------------------------------------------------------------


class Receivers:
    """Loopback subscribers: `/hook/<name>` answers 204 and records (name, webhook-id,
    conversation id); `/hook/hold` holds its first POST once armed, until released, then
    drops it unanswered (the sender's worker is killed meanwhile), so it counts only when
    delivered again."""

    def __init__(self) -> None:
        self.arrivals: list[checks.HookArrival] = []
        self.times: list[tuple[float, str, str]] = []  # (at, hook, conversation)
        self.lock = threading.Lock()
        self.hold_armed = threading.Event()
        self.hold_arrived = threading.Event()
        self.hold_release = threading.Event()
        self.hold_peer_port = 0
        self.held: list[tuple[str, str]] = []  # (webhook-id, conversation) of each held POST
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                name = self.path.rsplit("/", 1)[-1]
                try:
                    conversation = str(json.loads(body)["id"])
                except (ValueError, KeyError, TypeError):
                    conversation = "?"
                webhook_id = self.headers.get("webhook-id", "")
                if name == "hold" and receivers.hold_armed.is_set():
                    receivers.hold_armed.clear()
                    receivers.hold_peer_port = int(self.client_address[1])
                    receivers.held.append((webhook_id, conversation))
                    receivers.hold_arrived.set()
                    receivers.hold_release.wait(30)
                    self.close_connection = True
                    return  # no answer: the connection just closes
                with receivers.lock:
                    receivers.arrivals.append(checks.HookArrival(name, webhook_id, conversation))
                    receivers.times.append((now_s(), name, conversation))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024
            daemon_threads = True

        self.server = Server((h.HOST, 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.hold_release.set()
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[checks.HookArrival]:
        with self.lock:
            return list(self.arrivals)


def pid_with_local_port(port: int, candidates: list[int]) -> int | None:
    """The process (among `candidates`) owning the TCP socket bound to local `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    for pid in candidates:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                target = str(fd.readlink()) if fd.is_symlink() else ""
                if re.fullmatch(r"socket:\[(\d+)\]", target) and target[8:-1] in inodes:
                    return pid
        except OSError:
            continue
    return None


# --- the run ------------------------------------------------------------------------------


@dataclass
class Party:
    """One simulated org's key and the bridge connection wrapping it."""

    name: str
    key: str
    plan: str
    token: str = ""
    org: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class FaultRecord:
    name: str
    at_s: float
    note: str = ""
    canary: str | None = None
    recovered_s: float | None = None


@dataclass
class State:
    """Everything the run records while it goes; the checks read it at the end."""

    started: float = field(default_factory=now_s)
    sent: list[checks.SentEvent] = field(default_factory=list)
    attempts: int = 0
    unacknowledged: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # every answer to a CMS webhook
    action_statuses: Counter[str] = field(default_factory=Counter)
    revoked_at: float | None = None
    first_refusal: float | None = None  # the revoked connection's first 401 after it
    odd_answers: list[str] = field(default_factory=list)  # the bridge's own 5xx, described
    answers: list[int | str] = field(default_factory=list)
    conversations: list[tuple[str, str, float]] = field(default_factory=list)  # (id, agent, at)
    answered: int = 0
    replayed: int = 0
    replay_marked: int = 0
    mismatched: list[str] = field(default_factory=list)
    revoked_statuses: Counter[str] = field(default_factory=Counter)
    faults: list[FaultRecord] = field(default_factory=list)
    windows: list[dict[str, str]] = field(default_factory=list)
    doc_seen: dict[str, float] = field(default_factory=dict)  # canary -> first seen
    log: list[dict[str, Any]] = field(default_factory=list)
    log_seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def t(self) -> float:
        return round(now_s() - self.started, 1)

    def record(self, status: int | str, action: bool = False, body: bytes = b"") -> None:
        with self.lock:
            self.answers.append(status)
            (self.action_statuses if action else self.statuses)[str(status)] += 1
            if checks.unexpected_5xx([status]) and len(self.odd_answers) < 20:
                what = "action" if action else "CMS webhook"
                self.odd_answers.append(
                    f"t={self.t()} s {what}: {status} {body[:160].decode(errors='replace').strip()}"
                )


class Soak:
    def __init__(self, args: argparse.Namespace, profile: Profile) -> None:
        self.args, self.profile = args, profile
        self.rng = random.Random(args.seed)
        self.base = now_s() - 86_400  # every CMS version lies in the past
        self.state = State()
        self.stop = threading.Event()
        self.webs: list[h.Proc] = []
        self.workers: list[h.Proc] = []

    # -- setup --

    def start(self, procs: h.Processes, work: Path, store: h.Backend) -> None:
        self.procs, self.work, self.store = procs, work, store
        env = h.base_env(work)
        self.sim = h.Simulator(procs, env)
        secret = secrets.token_urlsafe(36)
        settings = {**BRIDGE_SETTINGS, "BRIDGE_SECRET_KEY": secret}
        self.bridges = [
            h.Bridge(procs, work, store, self.sim.api_url, settings, name=f"web{i}") for i in (1, 2)
        ]
        self.webs = [b.web for b in self.bridges]
        self.workers = [b.start_worker() for b in self.bridges]
        admin = self.sim.admin
        self.parties: dict[str, Party] = {}
        for name, plan in (
            ("sync", "free"),
            ("window_reset", "free"),
            ("window_kill", "free"),
            ("canary", "free"),
            ("hooks", "pro"),
            ("actions", "pro"),
            ("revoked", "free"),
        ):
            org = admin.create_org(f"Soak {name}", plan=plan)["id"]
            party = Party(name, admin.create_key(org), plan, org=org)
            party.token = self.bridges[0].connect(party.key, plan)
            self.parties[name] = party
        self.datastores: dict[str, str] = {}
        self.sources: dict[str, dict[str, Any]] = {}
        for provider in PROVIDER_KEYS:
            self.sources[provider] = self.make_source("sync", provider, provider)
        for window in ("window_reset", "window_kill", "canary"):
            self.sources[window] = self.make_source(window, "standard_webhooks", window)
        self.agents = [
            admin.create_agent(self.parties["hooks"].org, f"Agent {i}")["id"] for i in (1, 2)
        ]
        self.action_agent = admin.create_agent(self.parties["actions"].org, "Helper")["id"]
        self.revoked_agent = admin.create_agent(self.parties["revoked"].org, "Gone")["id"]
        self.receivers = Receivers()
        self.hooks = {
            "a1": self.agents[0],
            "a2": self.agents[0],
            "hold": self.agents[0],
            "b1": self.agents[1],
            "b2": self.agents[1],
        }
        with httpx.Client(base_url=self.bridges[0].url, timeout=30) as http:
            for name, agent in self.hooks.items():
                target = f"http://{h.HOST}:{self.receivers.port}/hook/{name}"
                http.post(
                    "/v1/hooks",
                    headers=self.parties["hooks"].auth,
                    json={"target_url": target, "agent_id": agent},
                ).raise_for_status()

    def make_source(self, party: str, provider: str, label: str) -> dict[str, Any]:
        datastore = self.sim.admin.create_datastore(self.parties[party].org, f"CMS {label}")["id"]
        self.datastores[label] = datastore
        made = httpx.post(
            f"{self.bridges[0].url}/v1/sources",
            timeout=30,
            headers=self.parties[party].auth,
            json={"provider": provider, "datastore_id": datastore},
        )
        if made.status_code != 201:
            raise SystemExit(f"creating a {provider} source: {made.status_code} {made.text}")
        return dict(made.json())

    def web_url(self, index: int | None = None) -> str:
        bridge = self.bridges[self.rng.randrange(2) if index is None else index]
        return bridge.url

    # -- workload --

    def send(self, source: dict[str, Any], event: CmsEvent, web: int | None = None) -> bool:
        """Deliver one webhook like a CMS: retry (re-signed) until a 2xx, at most 12 tries."""
        delay = 0.5
        for attempt in range(12):
            body, extra, msg_id = webhook(event, self.base)
            kwargs: dict[str, Any] = {
                "now": now_s(),
                "path": source["inbound_path"],
                "headers": extra,
            }
            if msg_id is not None:
                kwargs["msg_id"] = msg_id
            headers = sign(PROVIDERS[source["provider"]], source["secret"], body, **kwargs)
            url = self.web_url(web if attempt == 0 else None) + source["inbound_path"]
            with self.state.lock:
                self.state.attempts += 1
            try:
                answer = httpx.post(url, content=body, headers=headers, timeout=30)
                status: int | str = answer.status_code
                content = answer.content
            except httpx.HTTPError as exc:
                status, content = type(exc).__name__, b""
            self.state.record(status, body=content)
            if isinstance(status, int) and 200 <= status < 300:
                with self.state.lock:
                    self.state.sent.append(
                        checks.SentEvent(event.doc_key, event.op, event.version, event.order)
                    )
                return True
            if isinstance(status, int) and 400 <= status < 500 and status not in (404, 429):
                break  # a CMS gives up on a refusal
            time.sleep(delay)
            delay = min(delay * 2, 4)
        with self.state.lock:
            self.state.unacknowledged += 1
        return False

    def cms_load(self, events: list[CmsEvent]) -> None:
        gap = self.profile.load_s * 0.9 / max(len(events), 1)
        with ThreadPoolExecutor(self.profile.senders, thread_name_prefix="cms") as pool:
            for event in events:
                if self.stop.is_set():
                    break
                pool.submit(self.send, self.sources[event.provider], event)
                time.sleep(gap)

    def conversation_load(self) -> None:
        turn = 0
        while not self.stop.wait(self.profile.conversation_every_s):
            self.new_conversation(self.agents[turn % 2])
            turn += 1

    def new_conversation(self, agent: str) -> None:
        made = self.sim.admin.create_conversation(
            agent, messages=[{"from": "human", "text": "Is the cafe open on Sunday?"}]
        )
        with self.state.lock:
            self.state.conversations.append((made["id"], agent, now_s()))

    def action(self, party: Party, agent: str, key: str | None, web: int | None = None) -> Any:
        headers = dict(party.auth)
        if key:
            headers["Idempotency-Key"] = key
        try:
            answer = httpx.post(
                f"{self.web_url(web)}/v1/actions/query_agent",
                headers=headers,
                json={"agent_id": agent, "query": f"Opening hours? {key}"},
                timeout=40,
            )
        except httpx.HTTPError as exc:
            self.state.record(type(exc).__name__, action=True)
            return checks.Answer(type(exc).__name__)
        self.state.record(answer.status_code, action=True, body=answer.content)
        replayed = answer.headers.get("Idempotent-Replayed", "").lower() == "true"
        return checks.Answer(answer.status_code, answer.content, replayed)

    def action_load(self) -> None:
        index = 0
        actions, revoked = self.parties["actions"], self.parties["revoked"]
        while not self.stop.wait(self.profile.action_every_s):
            index += 1
            if index % 4 == 0:
                answer = self.action(revoked, self.revoked_agent, None)
                with self.state.lock:
                    self.state.revoked_statuses[str(answer.status)] += 1
                    revoked_at = self.state.revoked_at
                    if revoked_at and answer.status == 401 and not self.state.first_refusal:
                        self.state.first_refusal = now_s()
                continue
            if index % 2:
                self.action(actions, self.action_agent, None)
                with self.state.lock:
                    self.state.answered += 1
                continue
            key = f"soak-{index}-{self.rng.random():.6f}"
            first = self.action(actions, self.action_agent, key)
            replay = self.action(actions, self.action_agent, key)
            with self.state.lock:
                self.state.answered += 1
                self.state.replayed += 1
                self.state.replay_marked += int(replay.replayed)
                if checks.replay_mismatch(first, replay):
                    self.state.mismatched.append(f"{key}: {first.status} then {replay.status}")

    def upstream_faults(self) -> None:
        """~30 % 5xx throughout; a 429 burst every 25 s; 5 s stalls every 20 s. On every key
        but the windows' (their faults are the aimed ones alone, so that they hit) and the
        canaries' (their delay measures the bridge's recovery, not the workload's backlog)."""
        admin = self.sim.admin
        clean = ("window_reset", "window_kill", "canary")
        keys = [p.key for name, p in self.parties.items() if name not in clean]
        for key in keys:
            for status, share in ((500, 0.1), (502, 0.1), (503, 0.12)):
                admin.add_fault("status", path="^/api/", key=key, status=status, probability=share)
        beat = 0
        while not self.stop.wait(5):
            beat += 5
            revoked = self.parties["revoked"].key if self.state.revoked_at else None
            key = self.rng.choice([k for k in keys if k != revoked])  # let its 401s show
            if beat % 25 == 0:
                admin.add_fault("rate_limit", path="^/api/", key=key, retry_after=3, times=12)
            if beat % 20 == 0:
                admin.add_fault("stall", path="^/api/", key=key, seconds=5, times=3)

    def collect_log(self) -> None:
        """Keep a slim copy of the simulator's request log (it grows; we read it in steps)."""
        while True:
            entries = self.sim.admin.requests(since=self.state.log_seq)
            for entry in entries:
                body = entry.get("body")
                texts: list[str] = []
                if entry["path"].endswith("/upsert"):
                    if isinstance(body, dict):
                        texts = [str(d.get("text", "")) for d in body.get("documents") or []]
                    elif isinstance(body, str):  # over the log's 10 KB cap: the markers in it
                        texts = checks.MARKER.findall(body) and [
                            checks.marker(k, int(v)) for k, v in checks.MARKER.findall(body)
                        ]
                self.state.log.append(
                    {
                        "at": entry["at"],
                        "key": entry["key_hash"],
                        "method": entry["method"],
                        "path": entry["path"],
                        "status": entry["status"],
                        "texts": texts,
                    }
                )
                self.state.log_seq = entry["seq"]
            if self.stop.is_set() and not entries:
                return
            time.sleep(2)

    # -- faults --

    def canary(self, fault: FaultRecord, source: str, web: int | None = None) -> None:
        """A new document right after the fault: its arrival in ZappWay is the recovery."""
        key = f"canary{len(self.state.faults)}"
        event = CmsEvent("standard_webhooks", key, key, "upsert", 1, self.base + 60, key)
        fault.canary = key
        threading.Thread(
            target=self.send, args=(self.sources[source], event, web), daemon=True
        ).start()

    def fault(self, name: str) -> None:
        record = FaultRecord(name, self.state.t())
        print(f"  fault    : t={record.at_s:6.1f} s {name}", flush=True)
        getattr(self, f"fault_{name}")(record)
        self.state.faults.append(record)
        if name == "window_reset_then_delete":
            self.canary(record, "window_reset")
        elif name == "window_kill_mid_upsert":
            self.canary(record, "window_kill")  # the stale-marker takeover
        elif name != "revoke_key":
            self.canary(record, "canary", 0 if name == "kill_web" else None)

    def restart_worker(self, index: int) -> None:
        self.workers[index] = self.bridges[index].start_worker()

    def kill_workers(self, indexes: tuple[int, ...]) -> None:
        for index in indexes:
            self.workers[index]._kill_group(signal.SIGKILL)
            self.workers[index].popen.wait(5)

    def window_doc(self, window: str) -> CmsEvent:
        """Publish a new post on `window`'s source (in the background); return its delete."""
        key = f"win-{window[7:]}-{len(self.state.faults)}"
        publish = CmsEvent("standard_webhooks", key, key, "upsert", 1, self.base + 60, f"{key}-v1")
        threading.Thread(
            target=self.send, args=(self.sources[window], publish), daemon=True
        ).start()
        return CmsEvent("standard_webhooks", key, key, "delete", 0, self.base + 90, f"{key}-del")

    def wait_rule_gone(self, rule: str, timeout: float) -> bool:
        deadline = now_s() + timeout
        while now_s() < deadline:
            if all(r["id"] != rule for r in self.sim.admin.faults()):
                return True
            time.sleep(0.1)
        return False

    def fault_window_reset_then_delete(self, record: FaultRecord) -> None:
        """ZappWay applies a post's first upsert, the connection resets after the headers
        (the answer is lost), then the post's delete arrives: the post must end up absent."""
        rule = self.sim.admin.add_fault(
            "reset",
            path="/upsert$",
            key=self.parties["window_reset"].key,
            after_headers=True,
            times=1,
        )
        delete = self.window_doc("window_reset")
        hit = self.wait_rule_gone(rule, 60)
        self.send(self.sources["window_reset"], delete)
        record.note = f"{delete.doc_key}: reset {'hit' if hit else 'NOT hit'}, then its delete"
        self.state.windows.append(
            {
                "name": "reset after a first upsert, then the delete",
                "doc": delete.doc_key,
                "hit": str(hit),
            }
        )

    def fault_window_kill_mid_upsert(self, record: FaultRecord) -> None:
        """Both workers SIGKILLed while a first upsert is in flight (8 s latency) and holding
        the connection's sync marker; the delete arrives; the workers come back."""
        rule = self.sim.admin.add_fault(
            "latency", path="/upsert$", key=self.parties["window_kill"].key, seconds=8, times=1
        )
        delete = self.window_doc("window_kill")
        hit = self.wait_rule_gone(rule, 60)
        time.sleep(1)
        self.kill_workers((0, 1))
        self.send(self.sources["window_kill"], delete)
        time.sleep(1)
        self.restart_worker(0)
        self.restart_worker(1)
        record.note = (
            f"{delete.doc_key}: both workers killed mid-upsert"
            f" ({'in flight' if hit else 'upsert NOT seen'}), delete, restart"
        )
        self.state.windows.append(
            {
                "name": "kill mid first upsert (marker held), then the delete",
                "doc": delete.doc_key,
                "hit": str(hit),
            }
        )

    def fault_window_kill_mid_hook(self, record: FaultRecord) -> None:
        """The worker posting to a subscriber is SIGKILLed before it can record the answer;
        the delivery must come again after the restart, under the same webhook-id."""
        self.receivers.hold_arrived.clear()
        self.receivers.hold_release.clear()
        self.receivers.hold_armed.set()
        self.new_conversation(self.agents[0])
        arrived = self.receivers.hold_arrived.wait(75)
        killed = "none"
        if arrived:
            pids = [w.pid for w in self.workers]
            owner = pid_with_local_port(self.receivers.hold_peer_port, pids)
            index = pids.index(owner) if owner in pids else 0
            self.kill_workers((index,))
            killed = f"worker {index + 1}" + ("" if owner in pids else " (owner not found)")
            self.receivers.hold_release.set()
            time.sleep(1)
            self.restart_worker(index)
        self.receivers.hold_armed.clear()
        record.note = f"hold POST {'arrived' if arrived else 'never arrived'}; killed {killed}"
        self.state.windows.append(
            {"name": "kill between a hook POST and its record", "doc": "", "hit": str(arrived)}
        )

    def fault_revoke_key(self, record: FaultRecord) -> None:
        self.sim.admin.revoke_key(self.parties["revoked"].key)
        self.state.revoked_at = now_s()
        record.note = "recovered: its connection's first 401 (actions must never turn 5xx)"

    def fault_kill_web(self, record: FaultRecord) -> None:
        """SIGKILL web server 1 (master and worker) while actions wait on a slow upstream."""
        self.sim.admin.add_fault("latency", path="/query$", seconds=3, times=6)
        started = [
            threading.Thread(
                target=self.action,
                daemon=True,
                args=(self.parties["actions"], self.action_agent, f"killed-{i}-{record.at_s}", 0),
            )
            for i in range(4)
        ]
        for thread in started:
            thread.start()
        time.sleep(1.5)
        web = self.webs[0]
        web._kill_group(signal.SIGKILL)
        web.popen.wait(5)
        bridge = self.bridges[0]
        began = now_s()
        bridge.web = self.procs.start(
            "web1-web", h.gunicorn_argv(bridge.port, "bridge:create_app()"), bridge.env
        )
        self.webs[0] = bridge.web
        h.wait_http(f"{bridge.url}/healthz", bridge.web)
        record.note = f"4 requests in flight; web 1 answered /healthz {now_s() - began:.1f} s later"

    def fault_flush_redis(self, record: FaultRecord) -> None:
        import redis

        client = redis.Redis.from_url(self.store.redis_url or "")
        client.flushdb()
        client.close()
        record.note = f"FLUSHDB of Redis db {self.args.redis_db} (queue and rate budgets)"

    def fault_pg_terminate(self, record: FaultRecord) -> None:
        import psycopg

        database = self.store.database_url.rsplit("/", 1)[1]
        with psycopg.connect(self.store.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
        record.note = f"{len(rows)} connections of {database} terminated"

    def fault_kill_worker(self, record: FaultRecord) -> None:
        self.kill_workers((1,))
        time.sleep(2)
        self.restart_worker(1)
        record.note = "worker 2 SIGKILLed, restarted 2 s later"

    # -- observing --

    def documents(self) -> list[str]:
        texts: list[str] = []
        for datastore in self.datastores.values():
            texts += [str(d["text"]) for d in self.sim.admin.documents(datastore)]
        return texts

    def diagnose(self, doc_keys: list[str]) -> dict[str, list[str]]:
        """For each document that broke a promise: every upsert that carried it (when, which
        version, ZappWay's status; 0 is a reset) and every DELETE of its upstream copies."""
        upstream: dict[str, list[str]] = {}
        for datastore in self.datastores.values():
            for doc in self.sim.admin.documents(datastore):
                parsed = checks.parse_marker(str(doc["text"]))
                if parsed:
                    upstream.setdefault(parsed[0], []).append(str(doc["id"]))
        out: dict[str, list[str]] = {}
        for key in doc_keys[:20]:
            story = []
            for entry in self.state.log:
                at = round(entry["at"] - self.state.started, 1)
                for text in entry["texts"]:
                    parsed = checks.parse_marker(text)
                    if parsed and parsed[0] == key:
                        story.append(f"t={at} upsert V{parsed[1]} -> {entry['status']}")
                if entry["method"] == "DELETE" and any(
                    entry["path"].endswith(f"/{doc_id}") for doc_id in upstream.get(key, [])
                ):
                    story.append(f"t={at} DELETE -> {entry['status']}")
            story.append(f"upstream copies: {upstream.get(key, [])}; no DELETE call logged"
                         if not any("DELETE" in line for line in story) else
                         f"upstream copies: {upstream.get(key, [])}")  # fmt: skip
            out[key] = story
        return out

    def observe(self) -> tuple[checks.DocumentCheck, checks.HookCheck]:
        texts = self.documents()
        at = now_s()
        for text in texts:
            parsed = checks.parse_marker(text)
            if parsed and parsed[0] not in self.state.doc_seen:
                self.state.doc_seen[parsed[0]] = at
        with self.state.lock:
            sent = list(self.state.sent)
        docs = checks.check_documents(checks.expected_documents(sent), texts)
        return docs, checks.check_hooks(self.expected_hooks(), self.receivers.snapshot())

    def expected_hooks(self) -> list[tuple[str, str]]:
        with self.state.lock:
            conversations = list(self.state.conversations)
        return [
            (hook, conv)
            for conv, agent, _ in conversations
            for hook, watched in self.hooks.items()
            if watched == agent
        ]

    def redelivery(self, arrived: bool) -> str:
        if not arrived:
            return "the held POST never arrived (window not hit)"
        held_id, conversation = self.receivers.held[-1] if self.receivers.held else ("", "")
        again = [a.webhook_id for a in self.receivers.snapshot()
                 if (a.hook, a.conversation_id) == ("hold", conversation)]  # fmt: skip
        same = "same webhook-id" if set(again) == {held_id} else f"ids {sorted(set(again))}"
        return f"{held_id}: delivered again after the restart {len(again)} time(s), {same}"

    def hook_latencies(self) -> list[float]:
        """Seconds from each conversation's creation to each subscriber's first receipt."""
        created = {conv: at for conv, _, at in self.state.conversations}
        first: dict[tuple[str, str], float] = {}
        with self.receivers.lock:
            for at, hook, conv in self.receivers.times:
                first.setdefault((hook, conv), at)
        return [at - created[conv] for (_, conv), at in first.items() if conv in created]

    def watch(self) -> None:
        while not self.stop.wait(3):
            self.observe()

    # -- the whole run --

    def wait_for_polls(self, timeout: float = 60) -> None:
        """Start once the workers polled the agents (a new hook's watch is seeded by its first
        poll; a conversation older than that is not new)."""
        deadline = now_s() + timeout
        while now_s() < deadline:
            if any("/conversations" in c["path"] for c in self.sim.admin.requests()):
                time.sleep(2)
                return
            for worker in self.workers:
                worker.check()
            time.sleep(0.5)
        raise SystemExit("the workers never polled the agents")

    def run(self) -> None:
        self.wait_for_polls()
        events = plan_events(self.profile.docs, self.base, self.rng)
        self.planned = len(events)
        self.state = State()
        print(f"  load     : {len(events)} CMS events, {self.profile.load_s:g} s", flush=True)
        loops = (self.conversation_load, self.action_load, self.action_load,
                 self.upstream_faults, self.watch)  # fmt: skip
        threads = [threading.Thread(target=fn, daemon=True, name=fn.__name__) for fn in loops]
        cms = threading.Thread(target=self.cms_load, args=(events,), daemon=True)
        log = threading.Thread(target=self.collect_log, daemon=True)
        for thread in (*threads, cms, log):
            thread.start()
        for name in self.profile.faults:
            time.sleep(self.profile.fault_gap_s)
            self.fault(name)
        time.sleep(max(0.0, self.profile.load_s - (now_s() - self.state.started)))
        self.stop.set()
        print(f"  load     : over at t={self.state.t()} s; clearing upstream faults", flush=True)
        for thread in threads:
            thread.join(60)
        cms.join(120)  # the last sends finish their retries
        self.sim.admin.clear_faults()
        self.settle()
        log.join(30)

    def settle(self) -> None:
        """Wait for convergence: up to `settle_s`, and past it while the bridge still drains
        (its pending count fell within the last `PROGRESS_S`): a backlog built under the faults
        drains at the plan's rate, which is slow, not lost. Never past the run's own bound."""
        deadline = now_s() + self.profile.settle_s
        hard = self.state.started + self.profile.max_seconds - SETTLE_MARGIN_S
        fewest, progressed_at = None, now_s()
        while True:
            docs, hooks = self.observe()
            canaries = all(f.canary in self.state.doc_seen for f in self.state.faults if f.canary)
            pending = document_states(self.store.database_url).get("pending", 0)
            if fewest is None or pending < fewest:
                fewest, progressed_at = pending, now_s()
            draining = pending > 0 and now_s() - progressed_at < PROGRESS_S
            refused = self.probe_revoked()
            # converged, or nothing left that could change the verdict (a loss stays a loss)
            converged = (docs.ok or not pending) and hooks.ok and canaries and refused
            if converged or (now_s() > deadline and not draining) or now_s() > hard:
                break
            time.sleep(3)
        print(
            f"  settled  : t={self.state.t()} s (docs ok={docs.ok}, hooks ok={hooks.ok},"
            f" canaries={canaries})",
            flush=True,
        )
        for fault in self.state.faults:
            seen = self.state.doc_seen.get(fault.canary or "")
            if seen is not None:
                fault.recovered_s = round(seen - self.state.started - fault.at_s, 1)
            elif fault.name == "revoke_key" and self.state.first_refusal and self.state.revoked_at:
                fault.recovered_s = round(self.state.first_refusal - self.state.revoked_at, 1)

    def probe_revoked(self) -> bool:
        """Whether the revoked key's connection has answered 401; else ask once more. The load
        may end before its first 401 (a Redis flush holds every key for one window, and the
        revoked key's calls wait it out), so the settle phase keeps asking, faults cleared."""
        if not self.state.revoked_at or self.state.first_refusal:
            return True
        answer = self.action(self.parties["revoked"], self.revoked_agent, None)
        with self.state.lock:
            self.state.revoked_statuses[str(answer.status)] += 1
            if answer.status == 401 and not self.state.first_refusal:
                self.state.first_refusal = now_s()
        return self.state.first_refusal is not None

    # -- report --

    def report(self, wall: float) -> dict[str, Any]:
        docs, hooks = self.observe()
        log = self.state.log
        upserts = [
            (e["status"], e["texts"])
            for e in log
            if e["texts"] or (e["method"] == "POST" and e["path"].endswith("/upsert"))
        ]
        rate = {}
        for party in self.parties.values():
            times = [e["at"] for e in log if e["key"] == key_hash(party.key)]
            busiest, start = checks.busiest_window(times)
            rate[f"{party.name} ({party.plan})"] = {
                "calls": len(times),
                "max_calls_60s": busiest,
                "busiest_window_from_s": round(start - self.state.started, 1) if times else None,
                "plan_per_min": PLANS[party.plan],
            }
        found = {parsed[0] for text in self.documents() if (parsed := checks.parse_marker(text))}
        windows: list[dict[str, Any]] = []
        for window in self.state.windows:
            doc = window["doc"]
            if doc:
                present = doc in found
                outcome = (
                    f"{doc} {'PRESENT (lost delete)' if present else 'absent (ok)'};"
                    f" window hit: {window['hit']}"
                )
            else:
                outcome = self.redelivery(window["hit"] == "True")
            windows.append({"name": window["name"], "outcome": outcome})
        for held_id, conversation in self.receivers.held:
            again = {a.webhook_id for a in self.receivers.snapshot()
                     if (a.hook, a.conversation_id) == ("hold", conversation)}  # fmt: skip
            if again != {held_id}:
                windows.append({"name": "kill between a hook POST and its record", "outcome":
                                f"{held_id} delivered again as {sorted(again)}",
                                "failed": True})  # fmt: skip
        states = document_states(self.store.database_url)
        stuck = pending_summary(self.store.database_url)
        report: dict[str, Any] = {
            "profile": self.args.profile,
            "started": datetime.fromtimestamp(self.state.started, UTC).isoformat(
                timespec="seconds"
            ),
            "commit": h.machine_info()["commit"],
            "command": f"python -m bench.soak --profile {self.args.profile}",
            "setup": (
                "2 gunicorn servers (1 gevent process each) + 2 workers on PostgreSQL"
                f" (own database) and Redis db {self.args.redis_db}; simulator as ZappWay;"
                f" settings {BRIDGE_SETTINGS}"
            ),
            "wall_s": round(wall, 1),
            "events": {
                "planned": self.planned,
                "acknowledged": len(self.state.sent),
                "attempts": self.state.attempts,
                "unacknowledged": self.state.unacknowledged,
                "statuses": dict(self.state.statuses),
            },
            "documents": asdict(docs),
            "bridge_pending_documents": states,
            "bridge_pending_why": stuck,
            "resends": checks.upstream_resends(upserts),
            "hooks": {
                **asdict(hooks),
                "conversations": len(self.state.conversations),
                "latency_s": h.spread(self.hook_latencies(), digits=1),
            },
            "actions": {
                "answered": self.state.answered,
                "replayed": self.state.replayed,
                "replays_marked_replayed": self.state.replay_marked,
                "mismatched_replays": len(self.state.mismatched),
                "mismatches": self.state.mismatched[:20],
                "statuses": dict(self.state.action_statuses),
                "revoked_key_statuses": dict(self.state.revoked_statuses),
            },
            "rate": rate,
            "bridge_5xx": dict(checks.unexpected_5xx(self.state.answers)),
            "bridge_5xx_examples": self.state.odd_answers,
            "faults": [asdict(f) for f in self.state.faults],
            "windows": windows,
            "diagnosis": self.diagnose(docs.lost + docs.stale + docs.deleted_but_present),
            "upstream_calls": len(log),
            "upstream_statuses": dict(Counter(str(e["status"]) for e in log)),
        }
        if self.state.unacknowledged:
            report["incomplete"] = f"{self.state.unacknowledged} CMS events never acknowledged"
        report["failures"] = checks.failures(report)
        return report


def write_markdown(report: dict[str, Any]) -> None:
    """Replace this profile's section of bench/SOAK.md (the other profile's stays)."""
    head = (
        "# Soak results\n\nWritten by `python -m bench.soak` (`make soak`, `make soak-short`):"
        " the latest run of each profile. What it does: `bench/soak.py`'s docstring.\n\n"
    )
    text = SOAK_MD.read_text() if SOAK_MD.exists() else head
    sections = re.split(r"(?m)^(?=## )", text)
    kept = [s for s in sections[1:] if not s.startswith(f"## {report['profile']} profile")]
    SOAK_MD.write_text(sections[0] + "".join([checks.render_markdown(report) + "\n", *kept]))


def print_report(report: dict[str, Any]) -> None:
    print(checks.render_markdown(report))


def pending_summary(url: str) -> dict[str, Any]:
    """Why documents are still pending at the end: by last error, attempts and how far their
    next attempt is; and each connection's sync marker (what would run them)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(normalise_database_url(url))
    try:
        with engine.connect() as db:
            rows = db.execute(
                text(
                    "SELECT coalesce(last_error, '-'), attempts,"
                    " round(extract(epoch from next_attempt_at - now())), op, count(*)"
                    " FROM pending_documents WHERE state = 'pending'"
                    " GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC LIMIT 12"
                )
            ).all()
            markers = db.execute(
                text(
                    "SELECT c.id, round(extract(epoch from c.sync_due_at - now()))"
                    " FROM connections c WHERE c.id IN"
                    " (SELECT DISTINCT connection_id FROM pending_documents"
                    "  WHERE state = 'pending')"
                )
            ).all()
    finally:
        engine.dispose()
    return {
        "by_error": [
            {"last_error": str(e)[:120], "attempts": a, "next_in_s": n, "op": o, "count": c}
            for e, a, n, o, c in rows
        ],
        "markers_due_in_s": [m for _c, m in markers],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--profile", choices=tuple(PROFILES), default="short", help="short (~4 min) or full")
    add("--redis-db", type=int, default=7, help="our Redis database (7), flushed")
    add("--seed", type=int, default=16, help="the workload's random seed")
    add("--keep", action="store_true", help="keep the logs")
    add("--out", type=Path, default=h.RESULTS_DIR, help="where soak-<profile>.json goes")
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    h.guard_run(profile.max_seconds)
    began = now_s()
    with (
        h.workspace("soak", args.keep) as work,
        h.Processes(work) as procs,
        h.postgres_database("soak") as database,
        h.redis_database(args.redis_db) as redis_url,
    ):
        soak = Soak(args, profile)
        try:
            soak.start(procs, work, h.Backend("postgres", database, redis_url))
            soak.run()
            report = soak.report(now_s() - began)
        finally:
            soak.stop.set()
            if hasattr(soak, "receivers"):
                soak.receivers.close()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"soak-{args.profile}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_markdown(report)
    print_report(report)
    print(f"  written  : {path} and {SOAK_MD}")
    print("RESULT " + json.dumps({"file": str(path), "failures": report["failures"]}))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
