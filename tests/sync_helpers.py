"""Helpers for the CMS-sync tests: a connection with sources, signed webhooks, a driver for the
sync task, readers of what the simulator now holds, and a local CMS for thin payloads.

The webhooks are signed the way a sender would sign them (an HMAC over the raw body), posted to
the real `/in/<token>` route or, for bulk, handed to `bridge.sync.ingest.ingest` in one transaction.
Nothing here replaces bridge code: the sync runs through the registered Huey task.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from flask import Flask
from huey import Huey
from sqlalchemy import select

from bridge.infra.models import Connection, PendingDocument
from bridge.sync import sources
from bridge.sync.ingest import ingest
from bridge.sync.tasks import SyncTasks
from bridge.web.context import service_of
from sim.models import Document
from sim.state import EXTENSION, Store
from tests.conftest import bearer, runtime_of

GENERIC_SECRET = "generic-sync-secret-0123"
GENERIC_OPTIONS: dict[str, Any] = {
    "config": {"header": "X-Sig"},
    "mapping": {
        "id": "id",
        "title": "title",
        "text": "body",
        "updated": "updated_ms",
        "updated_unit": "ms",
        "event": "event",
        "delete_events": ["deleted"],
    },
}
BASE_MS = 1_714_557_600_000  # 2024-05-01T10:00:00Z: document versions count up from here
FAST = {
    "plan_limits": {"free": 100_000, "pro": 100_000},
    "upstream_max_retries": 0,
    "sync_debounce_s": 0.05,
}


@dataclass(frozen=True)
class SourceRef:
    id: str
    token: str
    connection_id: str
    datastore_id: str
    secret: str


def generic_body(doc_id: str, version: int, text: str, event: str = "upsert") -> bytes:
    """One generic CMS webhook body: document `doc_id` at `version` (ms after BASE_MS)."""
    payload = {
        "id": doc_id,
        "title": f"Title of {doc_id}",
        "body": text,
        "updated_ms": BASE_MS + version,
        "event": event,
    }
    return json.dumps(payload).encode()


def hmac_headers(secret: str, body: bytes) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Sig": signature}


class Bridge:
    """One connection on one bridge app, seen from a test: sources, webhooks, the sync task."""

    def __init__(self, app: Flask, api_key: str, plan: str | None = None) -> None:
        self.app = app
        self.client = app.test_client()
        body: dict[str, Any] = {"api_key": api_key}
        if plan is not None:
            body["plan"] = plan
        created = self.client.post("/v1/connections", json=body)
        assert created.status_code == 201, created.get_json()
        self.token: str = created.get_json()["token"]
        self.connection_id: str = created.get_json()["id"]
        self.runtime = runtime_of(app)
        self.huey = service_of(app, Huey)
        self.tasks = service_of(app, SyncTasks)

    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    def create_source(
        self,
        datastore_id: str,
        provider: str = "generic_hmac",
        secret: str = GENERIC_SECRET,
        **options: Any,
    ) -> SourceRef:
        """Create a source through the API (generic HMAC with the field map above by default)."""
        if provider == "generic_hmac" and not options:
            options = dict(GENERIC_OPTIONS)
        body = {"provider": provider, "datastore_id": datastore_id, "secret": secret, **options}
        created = self.client.post("/v1/sources", json=body, headers=self.headers())
        assert created.status_code == 201, created.get_json()
        answer = created.get_json()
        token = answer["inbound_path"].rsplit("/", 1)[1]
        return SourceRef(answer["id"], token, self.connection_id, datastore_id, answer["secret"])

    def events(self, source: SourceRef) -> list[dict[str, Any]]:
        """The source's received events, newest first (`GET /v1/sources/<id>/events`)."""
        answer = self.client.get(f"/v1/sources/{source.id}/events", headers=self.headers())
        assert answer.status_code == 200, answer.get_json()
        events: list[dict[str, Any]] = answer.get_json()
        return events

    def post(self, source: SourceRef, body: bytes, headers: dict[str, str]) -> Any:
        """POST a webhook to the source's inbound URL, as the CMS would."""
        return self.client.post(f"/in/{source.token}", data=body, headers=headers)

    def change(
        self, source: SourceRef, doc_id: str, version: int, text: str, event: str = "upsert"
    ) -> Any:
        """Send one signed generic webhook over HTTP; returns the response."""
        body = generic_body(doc_id, version, text, event)
        answer = self.post(source, body, hmac_headers(source.secret, body))
        assert answer.status_code in (200, 202), answer.get_json()
        return answer

    def ingest_bulk(self, source: SourceRef, changes: Iterable[tuple[str, int, str]]) -> int:
        """Record many signed generic webhooks through `ingest` in one transaction (no HTTP)."""
        count = 0
        with self.runtime.sessions() as session:
            db = session.connection()
            target = sources.find_by_token(db, source.token)
            assert target is not None
            for doc_id, version, text in changes:
                body = generic_body(doc_id, version, text)
                result = ingest(
                    db, self.runtime.box, target,
                    raw_body=body, headers=hmac_headers(source.secret, body), method="POST",
                    path=f"/in/{source.token}", debounce_s=0,
                )  # fmt: skip
                assert result.status == "accepted", result
                count += 1
            session.commit()
        return count

    def kick(self) -> None:
        """Start the connection's sync now (what the first webhook of a burst schedules)."""
        self.tasks.schedule(self.connection_id, 0)

    def drain(self, timeout: float = 30.0) -> None:
        """Run the connection's scheduled sync tasks, waiting for each one's time, until none
        is left (immediate-mode Huey keeps delayed tasks in its in-memory schedule)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            scheduled = self.huey.scheduled()
            if not scheduled:
                return
            task = min(scheduled, key=lambda t: t.eta)
            wait = (task.eta - datetime.now(UTC).replace(tzinfo=None)).total_seconds()
            time.sleep(min(max(0.0, wait), max(0.0, deadline - time.monotonic())))
            for due in self.huey.read_schedule():
                self.huey.execute(due)
        raise AssertionError(f"sync still scheduled after {timeout} s: {self.states()}")

    def run_for(self, seconds: float) -> None:
        """Run scheduled sync tasks as they fall due for `seconds` (work may remain after)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for due in self.huey.read_schedule():
                self.huey.execute(due)
            time.sleep(0.02)

    def rows(self) -> list[PendingDocument]:
        with self.runtime.sessions() as session:
            return list(
                session.scalars(
                    select(PendingDocument).where(
                        PendingDocument.connection_id == self.connection_id
                    )
                )
            )

    def row(self, cms_id: str) -> PendingDocument:
        (found,) = [r for r in self.rows() if r.cms_id == cms_id]
        return found

    def states(self) -> collections.Counter[str]:
        return collections.Counter(row.state for row in self.rows())

    def marker(self) -> datetime | None:
        with self.runtime.sessions() as session:
            connection = session.get(Connection, self.connection_id)
            assert connection is not None
            return connection.sync_due_at


# --- the fake upstream's side ----------------------------------------------------------------


class Interposed(httpx.BaseTransport):
    """The simulator behind a hand-written answer for what it cannot say itself (ZappWay refusing
    one document's content, a 429 with an HTTP-date Retry-After). `answer` returns a response
    to send instead, or None to let the simulator answer; every interposed answer is logged."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        answer: Callable[[httpx.Request], httpx.Response | None],
    ) -> None:
        self.inner = inner
        self.answer = answer
        self.interposed: list[tuple[float, httpx.Request]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        reply = self.answer(request)
        if reply is None:
            return self.inner.handle_request(request)
        request.read()
        self.interposed.append((time.time(), request))
        return reply


def tenant(sim_admin: Any, name: str, rate_limit: int | None = None) -> tuple[str, str]:
    """A second upstream organization: (its key, its datastore id)."""
    org = sim_admin.create_org(name)
    key = sim_admin.create_key(org["id"], rate_limit=rate_limit)
    datastore = sim_admin.create_datastore(org["id"], f"{name} docs")
    return key, str(datastore["id"])


def sim_store(sim_app: Flask) -> Store:
    store: Store = sim_app.extensions[EXTENSION]
    return store


def upstream_documents(sim_app: Flask, datastore_id: str) -> dict[str, Document]:
    """The simulator's documents in a datastore by external id; fails on any duplicate."""
    store = sim_store(sim_app)
    with store.lock:
        docs = [d for d in store.documents_of(datastore_id) if d.external_id]
    counts = collections.Counter(d.external_id for d in docs)
    duplicated = [k for k, n in counts.items() if n > 1]
    assert not duplicated, f"documents stored twice upstream: {duplicated[:5]}"
    return {d.external_id: d for d in docs if d.external_id}


def upsert_calls(sim_admin: Any, since: int = 0) -> list[dict[str, Any]]:
    """Every upsert request the simulator received (any status)."""
    return [
        r
        for r in sim_admin.requests(since=since)
        if r["method"] == "POST" and r["path"].endswith("/upsert")
    ]


def max_in_window(times: Iterable[float], window: float = 60.0) -> int:
    """The largest number of events inside any `window`-second span."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


# --- a local CMS for thin payloads ------------------------------------------------------------


@dataclass
class CmsRequest:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class LocalCms:
    """A tiny HTTP CMS: Storyblok CDN stories, Directus items and GitHub raw files.

    `content[path]` is what a GET of that path answers: a JSON-able value, or a
    `(content_type, text)` pair; `faults[path]` is a list of statuses answered first, one per
    request (then the content). Unknown paths: 404.
    """

    content: dict[str, Any] = field(default_factory=dict)
    faults: dict[str, list[int]] = field(default_factory=dict)
    received: list[CmsRequest] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str) -> tuple[int, str, bytes]:
        with self.lock:
            pending = self.faults.get(path)
            if pending:
                return pending.pop(0), "application/json", b'{"error":"busy"}'
            if path not in self.content:
                return 404, "application/json", b'{"error":"not found"}'
            value = self.content[path]
        if isinstance(value, tuple):
            content_type, text = value
            return 200, content_type, text.encode()
        return 200, "application/json", json.dumps(value).encode()

    def paths(self) -> list[str]:
        with self.lock:
            return [r.path for r in self.received]


@contextmanager
def local_cms() -> Iterator[LocalCms]:
    cms = LocalCms()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            with cms.lock:
                cms.received.append(
                    CmsRequest(
                        parts.path,
                        parse_qs(parts.query),
                        {k.lower(): v for k, v in self.headers.items()},
                    )
                )
            status, content_type, body = cms.answer(parts.path)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    cms.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield cms
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
