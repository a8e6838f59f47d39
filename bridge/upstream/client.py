"""The HTTP transport to ZappWay: pooled connections, the key's rate budget, retries, errors.

Every call goes through `UpstreamClient.call`, which (1) takes a slot from the key's shared rate
budget, (2) sends exactly `Authorization: Bearer <key>`, (3) turns transport failures and error
statuses into the tree in `bridge.upstream.errors` (the only translation point), and (4) retries
with jittered exponential backoff: 429 and refused connections always (nothing ran upstream),
5xx and timeouts only for idempotent calls. Bodies are read through an allow-list; raw upstream
bodies are never logged or returned (the legacy API leaks secrets in some of them).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpcore
import httpx

from bridge.config import Settings
from bridge.infra import metrics
from bridge.infra.backoff import Backoff
from bridge.infra.crypto import fingerprint
from bridge.upstream import wire
from bridge.upstream.errors import (
    UpstreamAuthError,
    UpstreamError,
    UpstreamForbidden,
    UpstreamNotFound,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamResponseError,
    UpstreamServerError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_from_response,
    is_legacy_auth_denial,
)
from bridge.upstream.gate import NeverSent, check_before_sending, current_gate
from bridge.upstream.ratelimit import KeyRateLimiter

log = logging.getLogger(__name__)
USER_AGENT = "zappway-bridge/0.1"

# Operation -> path per profile, relative to the configured base URL; the legacy API (ZappWay's
# open-source ancestor) puts upserts under /external and conversations under /logs.
PATHS: Mapping[str, Mapping[str, str]] = {
    "documented": {
        "me": "/me",
        "agents": "/agents",
        "agent": "/agents/{agent_id}",
        "query_agent": "/agents/{agent_id}/query",
        "datastores": "/datastores",
        "datastore": "/datastores/{datastore_id}",
        "query_datastore": "/datastores/{datastore_id}/query",
        "upsert": "/datastores/{datastore_id}/upsert",
        "datasource": "/datasources/{document_id}",
        "conversations": "/agents/{agent_id}/conversations",
        "conversation": "/conversations/{conversation_id}",
    },
    "legacy": {
        "me": "/me",
        "agents": "/agents",
        "agent": "/agents/{agent_id}",
        "query_agent": "/agents/{agent_id}/query",
        "datastores": "/datastores",
        "datastore": "/datastores/{datastore_id}",
        "query_datastore": "/datastores/{datastore_id}/query",
        "upsert": "/external/datastores/upsert/{datastore_id}",
        "update": "/external/datastores/update/{datastore_id}",
        "datasource": "/datasources/{document_id}",
        "conversations": "/logs",
        "conversation": "/conversations/{conversation_id}",
    },
}
# Routes where the legacy API checks the key strictly: a 403 there means the key is bad
# (elsewhere it may also mean a resource of another organization).
STRICT_OPERATIONS = frozenset({"me", "agents", "datastores", "datasource", "conversations"})
ORG_FIELDS = ("id", "name", "currentPlan", "isPremium", "nbAgents", "nbDatastores")


class KeyVerdicts(Protocol):
    """Where a client reports what ZappWay's answers say about its key (the connection's
    record of it: `bridge.connections.key_health`)."""

    def accepted(self) -> None:
        """ZappWay answered a call made with the key (called on every success: cheap)."""

    def rejected(self) -> None:
        """ZappWay rejected the key (401, or the legacy 403 that means the same)."""


@dataclass(frozen=True)
class Organization:
    """The upstream organization a key belongs to (billing fields dropped)."""

    id: str
    name: str
    plan: str | None
    is_premium: bool


class UpstreamPool:
    """Per-process owner of the HTTP connection pools and the shared rate limiter.

    The connections are split over several httpcore pools of at most `SHARD_SIZE` each:
    httpcore rescans its whole pool whenever a request starts or ends, so one pool of 1,000
    connections spent ~14 % of the bridge's CPU scanning during 1,000 concurrent calls
    (`bench/query_agent_load.py`). Requests go to httpcore directly (`bridge.upstream.wire`):
    httpx's client (cookie jar, auth flow, redirect loop, event hooks) and its request and
    response models are nothing the bridge uses, and cost a third of a call's HTTP time.
    """

    SHARD_SIZE = 100
    KEEPALIVE = 100  # idle connections kept per process, over all shards

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._transport = transport  # tests: the simulator's WSGI app instead of the network
        self._shards: list[httpcore.ConnectionPool] = []
        timeout = httpx.Timeout(
            settings.upstream_read_timeout_s, connect=settings.upstream_connect_timeout_s
        )
        self.extensions = {"timeout": timeout.as_dict()}
        self._turn = itertools.count()
        self._pid = 0
        self._lock = threading.Lock()
        self.limiter = KeyRateLimiter(settings)
        self.backoff = Backoff.exponential(retries=settings.upstream_max_retries)

    @property
    def http(self) -> httpcore.ConnectionPool:
        """Return one of the process's pools in turn (created lazily, anew after a fork)."""
        with self._lock:
            if not self._shards or self._pid != os.getpid():
                total = self.settings.upstream_max_connections
                count = -(-total // self.SHARD_SIZE)  # even shards: requests go to each in turn
                sizes = [total // count + (index < total % count) for index in range(count)]
                keepalive = max(10, self.KEEPALIVE // len(sizes))  # idle ones kept, all shards
                tls = httpx.create_ssl_context()  # one for all shards: loading CAs costs ~20 ms
                self._shards = [wire.new_pool(size, min(size, keepalive), tls) for size in sizes]
                self._pid = os.getpid()
            shards = self._shards
        return shards[next(self._turn) % len(shards)]

    def send(
        self, method: str, url: str, params: Mapping[str, Any] | None, json: Any,
        headers: dict[str, str],
    ) -> wire.Answer:  # fmt: skip
        """One request on one of the pools, its body read (redirects are never followed).

        Raises:
            httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError: and, from
                a test's httpx transport, httpx.TransportError (see `_translate_transport_errors`).
        """
        content = None if json is None else wire.json_body(json)
        if self._transport is not None:
            headers = {**headers, "User-Agent": USER_AGENT}
            return self._send_through(self._transport, method, url, params, content, headers)
        target = _wire_url(url) if not params else _wire_url_with(url, params)
        answer = self.http.request(
            method, target, headers=[*headers.items(), ("User-Agent", USER_AGENT)],
            content=content, extensions=self.extensions,
        )  # fmt: skip
        return wire.Answer(answer.status, answer.headers, answer.content)

    def _send_through(
        self, transport: httpx.BaseTransport, method: str, url: str,
        params: Mapping[str, Any] | None, content: bytes | None, headers: dict[str, str],
    ) -> wire.Answer:  # fmt: skip
        request = httpx.Request(method, _parsed_url(url), params=params, content=content,
                                headers=headers, extensions=self.extensions)  # fmt: skip
        response = transport.handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return wire.Answer(response.status_code, response.headers.raw, response.content)

    def client(
        self, api_key: str, per_minute: int, max_wait: float | None = None,
        verdicts: KeyVerdicts | None = None,
    ) -> UpstreamClient:  # fmt: skip
        """Return a client that acts with one ZappWay key under its rate budget.

        `max_wait` caps how long a call may wait for that budget (default: BRIDGE_RATE_WAIT);
        background work passes 0 and reschedules itself instead of holding a worker thread.
        `verdicts` hears whether ZappWay accepted or rejected the key.
        """
        return UpstreamClient(self, api_key, per_minute, max_wait, verdicts)

    def close(self) -> None:
        for shard in self._shards:
            shard.close()
        if self._transport is not None:
            self._transport.close()
        self.limiter.close()


@functools.lru_cache(maxsize=4096)
def _parsed_url(url: str) -> httpx.URL:
    """An operation's URL, parsed once per process: httpx checks every character of a URL
    string it is given (15 µs of a call's CPU), and an `httpx.URL` is immutable. The query
    string is merged into a copy (`params`), so the cache holds only base URL + path: one
    entry per operation and agent or datastore."""
    return httpx.URL(url)


@functools.lru_cache(maxsize=4096)
def _wire_url(url: str) -> httpcore.URL:
    """The same URL as httpcore takes it (scheme, host, port, target), made once."""
    return _as_wire(_parsed_url(url))


def _wire_url_with(url: str, params: Mapping[str, Any]) -> httpcore.URL:
    """The URL with a query string, encoded as httpx encodes `params` (never cached)."""
    return _as_wire(_parsed_url(url).copy_merge_params(params))


def _as_wire(url: httpx.URL) -> httpcore.URL:
    return httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                        target=url.raw_path)  # fmt: skip


class UpstreamClient:
    """Typed ZappWay operations for one key. Never returns an httpx.Response."""

    def __init__(
        self, pool: UpstreamPool, api_key: str, per_minute: int, max_wait: float | None = None,
        verdicts: KeyVerdicts | None = None,
    ) -> None:  # fmt: skip
        self._pool = pool
        self._max_wait = max_wait
        self._verdicts = verdicts
        self._api_key = api_key.strip()
        self._fp = fingerprint(self._api_key)
        self._per_minute = per_minute
        self._paths = PATHS[pool.settings.upstream_profile]

    def __repr__(self) -> str:
        return f"UpstreamClient(key=<SECRET …{self._api_key[-4:]}>)"

    @property
    def profile(self) -> str:
        return self._pool.settings.upstream_profile

    def whoami(self) -> Organization:
        """Return the key's organization (GET /me): the cheap, strict key check.

        Raises:
            UpstreamAuthError: the key is invalid or revoked (401, or legacy 403 `Forbidden`).
        """
        body = self.call("GET", "me", idempotent=True)
        if not isinstance(body, dict) or not body.get("id"):
            raise UpstreamProtocolError("ZappWay's /me answer has no organization id")
        org = {name: body.get(name) for name in ORG_FIELDS}
        return Organization(
            id=str(org["id"]),
            name=str(org["name"] or ""),
            plan=str(org["currentPlan"]) if org["currentPlan"] else None,
            is_premium=bool(org["isPremium"]),
        )

    def call(
        self,
        method: str,
        operation: str,
        *,
        path_params: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = False,
        max_wait: float | None = None,
        keep_meta: bool = False,
    ) -> Any:
        """Run one operation and return its JSON body, unwrapped from `{data}`.

        With `keep_meta`, return `(data, meta)` where meta is None for bare (legacy) bodies.
        Callers are the typed operations of `bridge.upstream.zappway`, never features.

        Raises:
            UpstreamError: any subclass, already translated.
        """
        settings = self._pool.settings
        if max_wait is None:
            max_wait = settings.upstream_rate_wait_s if self._max_wait is None else self._max_wait
        budget = max_wait
        deadline = time.monotonic() + budget
        quoted = {name: quote(str(value), safe="") for name, value in (path_params or {}).items()}
        path = self._paths[operation].format(**quoted)
        attempt = 0
        while True:
            try:
                return self._attempt(method, operation, path, params, json, deadline, keep_meta)
            except UpstreamError as exc:
                delay = self._retry_delay(exc, attempt, idempotent)
                if delay is None or time.monotonic() + delay > deadline:
                    raise
                log.info(
                    "upstream.retry op=%s reason=%s attempt=%d delay=%.2f key=%s",
                    operation, exc.code, attempt + 1, delay, self._fp[:8],
                )  # fmt: skip
                time.sleep(delay)
                attempt += 1

    def _retry_delay(self, exc: UpstreamError, attempt: int, idempotent: bool) -> float | None:
        """Return seconds to wait before retrying, or None when the error is final."""
        backoff = self._pool.backoff.delay(attempt)
        if backoff is None:
            return None
        if isinstance(exc, UpstreamRateLimited) and exc.upstream_status == 429:
            return exc.retry_after if exc.retry_after is not None else 1 + backoff
        refused = type(exc) is UpstreamUnavailable
        transient = isinstance(exc, UpstreamServerError | UpstreamTimeout)
        if refused or (idempotent and transient):
            return backoff
        return None

    def _attempt(
        self,
        method: str,
        operation: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        deadline: float,
        keep_meta: bool,
    ) -> Any:
        self._take_budget(max(0.0, deadline - time.monotonic()))
        url = self._pool.settings.upstream_base_url + path
        headers = {"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"}
        started = time.monotonic()
        try:
            with _translate_transport_errors():
                response = self._pool.send(method, url, params, json, headers)
        except UpstreamError as exc:
            self._observe(operation, exc.code, started)
            raise
        self._observe(operation, str(response.status_code), started)
        log.debug("upstream.response op=%s status=%d", operation, response.status_code)
        if response.is_success:
            if self._verdicts is not None:
                self._verdicts.accepted()
            return _unwrap(response, keep_meta)
        error = error_from_response(response, (self._api_key,))
        if response.status_code == 403 and is_legacy_auth_denial(response):
            error = self._resolve_ambiguous_403(operation, error)
        if isinstance(error, UpstreamAuthError):
            log.warning("upstream.key_rejected op=%s key=%s", operation, self._fp[:8])
            if self._verdicts is not None:
                self._verdicts.rejected()
        raise error

    def _take_budget(self, max_wait: float) -> None:
        """Take a slot of the key's budget, within the run's deadline while nothing was sent;
        then the caller's precondition on sending (`gate.sending_only_if`).

        Raises:
            UpstreamRateLimited: no slot within `max_wait`; `NeverSent` when the run's
                deadline, not the rate wait, cut the wait short.
        """
        gate = current_gate()
        if gate is None:
            self._pool.limiter.acquire(self._fp, self._per_minute, max_wait=max_wait)
            check_before_sending()
            return
        allowed = gate.max_wait(max_wait)
        gate.waiting(lambda: self._pool.limiter.seconds_until_free(self._fp))
        try:
            self._pool.limiter.acquire(self._fp, self._per_minute, max_wait=allowed)
        except UpstreamRateLimited as exc:
            if allowed < max_wait:
                raise NeverSent(exc.retry_after or 1.0) from exc
            raise
        check_before_sending()  # before the run counts as having sent anything
        gate.admit()

    def _observe(self, operation: str, status: str, started: float) -> None:
        """Count one request in the metrics (a 429 also against the key's plan)."""
        series = metrics.get()
        series.upstream_calls.labels(operation, status).inc()
        series.upstream_seconds.labels(operation).observe(time.monotonic() - started)
        if status == "429":
            series.rate_limited.labels(str(self._per_minute), "upstream").inc()

    def _resolve_ambiguous_403(
        self, operation: str, error: UpstreamResponseError
    ) -> UpstreamResponseError:
        """Tell a bad key from a forbidden resource after a legacy-style 403.

        Always asks the strict `/me`: a cached "verified recently" would report a key revoked
        since then as a forbidden resource (403) instead of a rejected key (401). Legacy 403s
        are rare, so the extra call is cheap.
        """
        if operation in STRICT_OPERATIONS:
            return UpstreamAuthError(upstream_status=403)
        try:
            self.whoami()
        except UpstreamAuthError as auth_error:
            return auth_error
        except UpstreamError:
            return error
        return UpstreamForbidden(error.message, upstream_status=403)


# httpcore's exceptions (the pools) and httpx's (a test's transport), by what they mean here.
_NOT_CONNECTED = (httpcore.ConnectTimeout, httpcore.PoolTimeout,
                  httpx.ConnectTimeout, httpx.PoolTimeout)  # fmt: skip
_TIMED_OUT = (httpcore.TimeoutException, httpx.TimeoutException)
_CUT_OFF = (httpcore.RemoteProtocolError, httpcore.ReadError,
            httpx.RemoteProtocolError, httpx.ReadError)  # fmt: skip
_FAILED = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol,
           httpcore.ProxyError, httpx.TransportError)  # fmt: skip


@contextmanager
def _translate_transport_errors() -> Iterator[None]:
    """Map transport failures onto the tree (always `from exc`)."""
    try:
        yield
    except _NOT_CONNECTED as exc:
        raise UpstreamUnavailable() from exc
    except _TIMED_OUT as exc:
        raise UpstreamTimeout() from exc
    except _CUT_OFF as exc:
        # The request was sent and the connection died before the answer: ZappWay may have
        # run it, so only idempotent calls may be retried (never "refused, nothing ran").
        raise UpstreamServerError("ZappWay closed the connection without an answer") from exc
    except _FAILED as exc:
        raise UpstreamUnavailable() from exc


def _unwrap(response: wire.Answer, keep_meta: bool = False) -> Any:
    """Return the body of a success, unwrapping `{data: ...}` (documented) or bare JSON (legacy).

    Raises:
        UpstreamNotFound: for the legacy `null` body meaning "no such object".
        UpstreamProtocolError: for HTML or unparsable bodies.
    """
    if response.status_code == 204 or not response.content:
        return (None, None) if keep_meta else None
    try:
        body = response.json()
    except ValueError as exc:
        raise UpstreamProtocolError() from exc
    if body is None:
        raise UpstreamNotFound()
    meta = None
    if isinstance(body, dict) and "data" in body and set(body) <= {"data", "meta"}:
        meta = body.get("meta") if isinstance(body.get("meta"), dict) else None
        body = body["data"]
    return (body, meta) if keep_meta else body
