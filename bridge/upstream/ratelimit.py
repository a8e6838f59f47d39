"""Per-upstream-key request budget, shared by every web process and worker.

Built on pyrate-limiter (sliding-window log): Redis when REDIS_URL is set, a PostgreSQL table
when the database is PostgreSQL, otherwise a SQLite file under var/ whose write lock the
processes take turns on.
Each key gets one bucket named by the key's fingerprint, never the key itself.

The window is a little longer than a minute (`WINDOW_MS`): the upstream counts arrivals, and a
request admitted here reaches it later: milliseconds usually, but more than a second on a
starved machine (the 5 Dec soak, 2 cores shared with a test suite, saw 61 arrivals in 60 s for a
60/min key under a 61 s window). A 62-second sliding window leaves two seconds for that, at the
cost of 3 % of a saturated key's throughput.

The hot path pays for one check per call and queues behind nothing it does not need: on Redis
an admission is the bucket's own atomic Lua script, without pyrate-limiter's process-wide lock
(which spanned the round trip); the SQL buckets check, then insert, so they keep that lock, and
on SQLite the processes take turns through the database's own write lock
(`bridge.upstream.sqlite_budget`), retried every millisecond.

On Redis, which may forget the windows (a restart without persistence, a FLUSHDB), the buckets
notice it and hold every key for one window (`bridge.upstream.redis_budget`). The SQLite and
PostgreSQL backends keep their windows durably. A store that cannot be reached is an honest 503
(`UpstreamUnavailable`, the call never left the bridge), never a 500 or a call let through.

Entries older than the window are deleted by the leak, the only thing that removes them in any
backend (the buckets' puts only insert): every `LEAK_INTERVAL_MS`, one thread per factory, the
bridge's own rather than pyrate-limiter's Leaker (see `SharedBuckets.schedule_leak`).
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, cast

import psycopg
from pyrate_limiter import AbstractBucket, BucketFactory, Limiter, Rate, RateItem
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from bridge.config import Settings
from bridge.infra import metrics
from bridge.upstream.errors import UpstreamRateLimited, UpstreamUnavailable
from bridge.upstream.redis_budget import GuardedRedisBucket, RedisLossGuard

log = logging.getLogger(__name__)

WINDOW_MS = 62_000
LEAK_INTERVAL_MS = 10_000  # how often a factory's buckets drop entries older than the window
# What a budget store raises when it cannot be reached: Redis, the SQL database (which holds
# Redis's epoch), and psycopg itself under pyrate-limiter's PostgreSQL bucket (a connection the
# server cut, after a restart or a failover: its pool replaces it, and the client retries).
STORE_ERRORS = (RedisError, SQLAlchemyError, psycopg.Error)
LEAK_ERRORS = (*STORE_ERRORS, sqlite3.Error)  # a leak skips a round on these, then goes on


class KeyRateLimiter:
    """Admit or delay upstream calls so no key exceeds its requests-per-minute."""

    def __init__(self, settings: Settings, window_ms: int = WINDOW_MS) -> None:
        """`window_ms` is shorter only in tests; the plan is per minute everywhere else."""
        self._factory = SharedBuckets(settings, window_ms, guard_loss=True)
        self._limiter = Limiter(self._factory, buffer_ms=20)

    def acquire(self, key_fingerprint: str, per_minute: int, max_wait: float) -> None:
        """Take one request from the key's budget, waiting up to `max_wait` seconds.

        Raises:
            UpstreamRateLimited: when the budget will not free up within `max_wait`;
                `retry_after` says when it will.
            UpstreamUnavailable: the shared budget store is unreachable (the client retries
                it with backoff like a refused connection: nothing was sent).
        """
        self._factory.set_limit(key_fingerprint, per_minute)
        started = time.monotonic()
        try:
            admitted = self._factory.put_at_once(key_fingerprint)
            if admitted is None or (not admitted and max_wait > 0):
                admitted = self._through_limiter(key_fingerprint, max_wait)
        except STORE_ERRORS as exc:
            raise UpstreamUnavailable(
                "The bridge's shared rate-budget store is unreachable, so the call never left "
                "the bridge; retry in a few seconds"
            ) from exc
        series, plan = metrics.get(), str(per_minute)
        series.rate_wait_seconds.labels(plan).observe(time.monotonic() - started)
        if admitted:
            return
        series.rate_limited.labels(plan, "budget").inc()
        with self._locked():  # the bucket's verdict state is shared by the process's threads
            wait_ms = self._factory.wait_ms(key_fingerprint)
        raise UpstreamRateLimited(
            f"This connection's ZappWay budget ({per_minute} requests/minute) is used up and "
            f"the call never left the bridge; retry in {max(1, math.ceil(wait_ms / 1000))} s",
            upstream_status=0,
            retry_after=max(1.0, wait_ms / 1000),
        )

    def _through_limiter(self, key_fingerprint: str, max_wait: float) -> bool:
        """pyrate-limiter's acquire: under its process-wide lock, waiting up to `max_wait`.

        Not waiting (`max_wait` 0) means not waiting for the budget; the lock is still waited
        for. The library's non-blocking acquire also gives up when another thread holds the
        lock, which refused calls with budget to spare (8 worker threads on one key: 1 of 12).
        Its lock is reentrant, so holding it first makes the non-blocking acquire wait its turn.
        """
        if max_wait > 0:
            admitted = self._limiter.try_acquire(key_fingerprint, blocking=True, timeout=max_wait)
        else:
            with self._locked():
                admitted = self._limiter.try_acquire(key_fingerprint, blocking=False)
        assert isinstance(admitted, bool)  # the buckets here are synchronous
        return admitted

    def _locked(self) -> AbstractContextManager[Any]:
        """The Limiter's process-wide lock (one RLock: the Limiter is built on a factory)."""
        return cast(AbstractContextManager[Any], self._limiter.lock)

    def seconds_until_free(self, key_fingerprint: str) -> float:
        """Seconds until the key's budget admits a request again (at least 1)."""
        try:
            with self._locked():
                return max(1.0, self._factory.wait_ms(key_fingerprint) / 1000)
        except STORE_ERRORS:
            return 1.0

    def close(self) -> None:
        self._factory.close()


class SharedBuckets(BucketFactory):
    """One bucket per name (each with its own per-window limit), created on first use in the
    configured shared backend. The console's sign-in limiter uses it too."""

    def __init__(self, settings: Settings, window_ms: int, *, guard_loss: bool = False) -> None:
        """`guard_loss`: on Redis, hold every bucket for a window after Redis loses its data
        (the upstream budgets need it; the console's sign-in limiter does not)."""
        self._settings = settings
        self._window_ms = window_ms
        self._buckets: dict[str, AbstractBucket] = {}
        self._limits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._guard: RedisLossGuard | None = None
        self._closers: list[Callable[[], None]] = []  # what the backend opened, for close()
        self.leak_interval = LEAK_INTERVAL_MS
        self._leaking: threading.Thread | None = None
        self._stop_leaking = threading.Event()
        self._backend = self._make_backend(settings, guard_loss)
        # Redis checks and inserts in one Lua script; SQLite under its own write lock
        # (`sqlite_budget`). pyrate-limiter's PostgreSQL bucket counts, then inserts.
        self._atomic_put = bool(settings.redis_url) or not is_postgres(settings)

    def set_limit(self, name: str, per_minute: int) -> None:
        with self._lock:
            self._limits[name] = per_minute
            bucket = self._buckets.get(name)
            if bucket is not None and bucket.rates[0].limit != per_minute:
                bucket.rates = [Rate(per_minute, self._window_ms)]

    def put_at_once(self, name: str) -> bool | None:
        """Admit one request with the bucket's own atomic check, without the Limiter's lock;
        None when the backend needs that lock (PostgreSQL's bucket checks, then inserts).

        The Limiter holds one process-wide lock across each put, which on Redis spans a round
        trip: under gevent, every other greenlet's upstream call of the process queued behind
        it. The Redis bucket's check-and-insert is one Lua script, atomic on the server; the
        SQLite bucket's runs under the database's write lock (`sqlite_budget`), and skipping the
        Limiter's bookkeeping there saves a sixth of the budget's CPU. So an admission needs no
        lock here; only a key at its limit goes on to the Limiter's wait.
        """
        if not self._atomic_put:
            return None
        item = self.wrap_item(name)
        return bool(self.get(item).put(item))

    def wrap_item(self, name: str, weight: int = 1) -> RateItem:
        return RateItem(name, time.time_ns() // 1_000_000, weight=weight)

    def get(self, item: RateItem) -> AbstractBucket:
        with self._lock:
            bucket = self._buckets.get(item.name)
            if bucket is None:
                rates = [Rate(self._limits.get(item.name, 60), self._window_ms)]
                bucket = self._backend(item.name, rates)
                self._buckets[item.name] = bucket
                self.schedule_leak(bucket)
            return bucket

    def wait_ms(self, name: str) -> int:
        bucket = self.get(self.wrap_item(name))
        waited = bucket.waiting(self.wrap_item(name))
        return int(waited) if isinstance(waited, int) and waited > 0 else 1000

    def owned_buckets(self) -> list[AbstractBucket]:
        with self._lock:
            return list(self._buckets.values())

    def schedule_leak(self, new_bucket: AbstractBucket) -> None:
        """Make sure this factory's leak thread runs; it leaks every bucket `get` made.

        Not pyrate-limiter's Leaker: its thread runs `asyncio.run`. Under gunicorn's gevent
        worker every thread is a greenlet of the process's one OS thread, and asyncio's running
        loop is per OS thread, so the first factory's Leaker (the upstream budget's, say) held a
        loop running for every greenlet, and the second's (the console's sign-in limiter) died
        with "asyncio.run() cannot be called from a running event loop", once per new bucket,
        never leaking its buckets. The buckets here are all synchronous: a plain loop does.
        """
        if self._leaking is None or not self._leaking.is_alive():  # the first, or after a fork
            self._stop_leaking.clear()
            self._leaking = threading.Thread(
                target=self._leak_until_closed, name="bridge budget leak", daemon=True
            )
            self._leaking.start()

    def _leak_until_closed(self) -> None:
        """Every `leak_interval` ms, drop each bucket's entries older than its window.

        A store that cannot be reached skips the round (the next one leaks what it missed):
        an uncaught error would end the thread and every leak after it.
        """
        while not self._stop_leaking.wait(self.leak_interval / 1000):
            now_ms = time.time_ns() // 1_000_000  # the clock the entries were stamped with
            for bucket in self.owned_buckets():
                try:
                    bucket.leak(now_ms)
                except LEAK_ERRORS as exc:
                    log.warning("ratelimit.leak_skipped reason=%s", type(exc).__name__)

    def close(self) -> None:
        # The leak stops before the buckets close: left running, it would leak into a
        # PostgreSQL bucket's closed pool.
        self._stop_leaking.set()
        leaking = self._leaking
        if leaking is not None and leaking is not threading.current_thread():
            leaking.join(timeout=5)
        self._leaking = None
        super().close()
        with self._lock:
            self._buckets.clear()
        for close in self._closers:
            close()
        if self._guard is not None:
            self._guard.close()

    def _make_backend(self, settings: Settings, guard_loss: bool) -> Any:
        """Return a function (name, rates) -> bucket for the configured shared store."""
        if not settings.redis_url:
            return _make_sql_backend(settings, self._closers)
        import redis

        client = redis.Redis.from_url(settings.redis_url)
        self._closers.append(client.close)
        if guard_loss:
            self._guard = RedisLossGuard(client, settings.database_url, self._window_ms)
        guard = self._guard
        return lambda name, rates: GuardedRedisBucket(rates, client, f"zwb:ratelimit:{name}", guard)


def is_postgres(settings: Settings) -> bool:
    """Whether the SQL budget store is PostgreSQL (else the local SQLite file)."""
    return settings.database_url.startswith("postgresql")


def _make_sql_backend(settings: Settings, closers: list[Callable[[], None]]) -> Any:
    """Return a function (name, rates) -> bucket for PostgreSQL or the local SQLite file, and
    add to `closers` what must be closed with the factory."""
    if is_postgres(settings):
        from psycopg_pool import ConnectionPool
        from pyrate_limiter import PostgresBucket
        from sqlalchemy.engine import make_url

        dsn = make_url(settings.database_url).set(drivername="postgresql")
        conninfo = dsn.render_as_string(hide_password=False)
        pool = ConnectionPool(conninfo, min_size=1, max_size=4, open=True)
        # Each bucket closes the pool it shares, but a factory that never made a bucket (no
        # call yet) must close it too, or its connections outlive the app.
        closers.append(pool.close)
        return lambda name, rates: PostgresBucket(pool, f"zwb_{name}", rates)
    from pyrate_limiter import SQLiteBucket

    from bridge.upstream.sqlite_budget import SqliteWriteLock, WindowLogBucket

    path = settings.ratelimit_sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)

    def make(name: str, rates: list[Rate]) -> SQLiteBucket:
        bucket = WindowLogBucket.init_from_file(
            rates, table=f"zwb_{name}", db_path=str(path), use_file_lock=True
        )
        # The file lock serves the table's creation above; each call then takes SQLite's own
        # write lock instead (`sqlite_budget`: a tenth of a millisecond less per call, and
        # retried every millisecond, not pyrate-limiter's 50). pyrate types the attribute as
        # an RLock; init_from_file itself stores a FileLock there.
        bucket.lock = SqliteWriteLock(bucket.conn)  # type: ignore[assignment]
        return bucket

    return make
