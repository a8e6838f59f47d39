"""The Redis side of the per-key budget: a sliding-window-log bucket that notices Redis lost it.

Redis run without persistence forgets every window on a restart, and so does a FLUSHDB; the
next minute could then see a key's whole plan on top of the calls the lost window held (a soak
measured 75 calls in 60 s for a 60/min key). So:

- Redis holds an epoch (`EPOCH_KEY`, no TTL), and the SQL database (`durable_marks`) remembers
  the epoch the bridge last saw. The bucket's own Lua script checks the epoch in the same round
  trip that counts and inserts, so a loss is seen by the very next call, in every process, at
  no extra cost on the hot path.
- No epoch in Redis but one in the database: Redis lost its data. The first process to notice
  declares a new epoch and, atomically with it, a shared quarantine (`QUARANTINE_KEY`, expiring
  after one window) during which every key's budget counts as full: a call waits for it or is
  refused with Retry-After, exactly as when its budget is used up. After one window, nothing
  admitted before the loss can share a window with what is admitted after it.
- No epoch anywhere is a first start, not a loss: the epoch is declared without a quarantine.

Nothing in-process is the source of truth: the flag saying this process has confirmed the
database remembers the current epoch only saves a database read.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from pyrate_limiter import Rate, RateItem, RedisBucket
from pyrate_limiter.abstracts.algorithm import ADMITTED, Decision
from pyrate_limiter.buckets.redis_bucket import LuaScript
from pyrate_limiter.utils import id_generator
from redis import Redis, RedisError
from sqlalchemy import Engine

from bridge.infra.marks import read_mark, write_mark
from bridge.infra.storage import make_engine

log = logging.getLogger(__name__)

EPOCH_KEY = "zwb:ratelimit:epoch"
QUARANTINE_KEY = "zwb:ratelimit:quarantine"
EPOCH_MARK = "ratelimit.redis_epoch"

QUARANTINED = -2  # the script's first reply when the shared quarantine holds
NO_EPOCH = -3  # ... and when Redis holds no epoch (a first start, or Redis lost its data)

# pyrate-limiter's put script counts a window's entries up to the caller's own timestamp.
# Timestamps are read before the call reaches Redis, so a call stamped a millisecond earlier
# can arrive after a later one and not count it: 8 threads sharing a 12/min key had 17
# admitted. Counting to +inf counts every entry admitted since the window began.
_COUNT_TO_NOW = "redis.call('ZCOUNT', bucket, window_start, now)"
PUT_ITEM = LuaScript.PUT_ITEM.replace(
    _COUNT_TO_NOW, "redis.call('ZCOUNT', bucket, window_start, '+inf')"
)
if PUT_ITEM == LuaScript.PUT_ITEM:  # pragma: no cover - a pyrate-limiter upgrade changed it
    raise RuntimeError("pyrate-limiter's Redis put script no longer counts as expected")

# KEYS: bucket, epoch, quarantine. The checks run before the put script, in the same atomic
# evaluation.
GUARDED_PUT = (
    """
    local held = redis.call('PTTL', KEYS[3])
    if held > 0 then return {-2, held} end
    if redis.call('EXISTS', KEYS[2]) == 0 then return {-3, -1} end
    """
    + PUT_ITEM
)

# KEYS: epoch, quarantine; ARGV: the new epoch, the quarantine in ms (0: none). Returns the
# epoch Redis now holds: ours, or the one another process declared first.
DECLARE_EPOCH = """
    local current = redis.call('GET', KEYS[1])
    if current then return current end
    if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end
    redis.call('SET', KEYS[1], ARGV[1])
    return ARGV[1]
"""


class RedisLossGuard:
    """Tells a first start from a Redis that lost the budgets, and quarantines after a loss."""

    def __init__(self, client: Redis, database_url: str, window_ms: int) -> None:
        self._redis = client
        self._database_url = database_url
        self._window_ms = window_ms
        self._declare = client.register_script(DECLARE_EPOCH)
        self._engine: Engine | None = None
        self._confirmed: str | None = None  # the epoch this process saw in the database
        self._lock = threading.Lock()

    def recover(self) -> None:
        """Redis holds no epoch: declare one, with a one-window quarantine when the database
        says Redis held one before (it lost its data), and remember it in the database.

        Raises:
            RedisError, SQLAlchemyError: a store is unreachable; nothing was admitted.
        """
        with self._lock:
            remembered = read_mark(self._db(), EPOCH_MARK)
            ours = uuid.uuid4().hex
            hold_ms = self._window_ms if remembered is not None else 0
            raw = self._declare(keys=[EPOCH_KEY, QUARANTINE_KEY], args=[ours, hold_ms])
            epoch = raw.decode() if isinstance(raw, bytes) else str(raw)
            if epoch == ours and hold_ms:
                log.warning(
                    "ratelimit.redis_lost every key's budget counts as full for %d ms", hold_ms
                )
            self._remember(epoch)

    def confirm(self) -> None:
        """Once per process (and after each new epoch): make sure the database remembers the
        epoch Redis holds, so a loss is detected even if its declarer died before storing it."""
        raw = self._redis.get(EPOCH_KEY)
        if raw is None:
            self.recover()
            return
        epoch = raw.decode() if isinstance(raw, bytes) else str(raw)
        if epoch != self._confirmed:
            with self._lock:
                self._remember(epoch)

    @property
    def confirmed(self) -> bool:
        return self._confirmed is not None

    def _remember(self, epoch: str) -> None:
        if read_mark(self._db(), EPOCH_MARK) != epoch:
            write_mark(self._db(), EPOCH_MARK, epoch)
        self._confirmed = epoch

    def _db(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self._database_url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


class GuardedRedisBucket(RedisBucket):
    """pyrate-limiter's RedisBucket, with the loss checks of `RedisLossGuard` in its script.

    The script goes through redis-py's `Script`, which reloads it when Redis answers NOSCRIPT:
    the library's bucket loads it once, and after a Redis restart would fail every call.
    Without a guard (the console's sign-in limiter), only that reload applies.
    """

    def __init__(
        self, rates: list[Rate], client: Redis, bucket_key: str, guard: RedisLossGuard | None
    ) -> None:
        super().__init__(rates, client, bucket_key, script_hash="")
        self._guard = guard
        script = GUARDED_PUT if guard is not None else PUT_ITEM
        self._script = client.register_script(script)

    def _check_and_insert(self, item: RateItem) -> Decision:
        if self._guard is not None and not self._guard.confirmed:
            self._guard.confirm()
        keys = [self.bucket_key]
        if self._guard is not None:
            keys += [EPOCH_KEY, QUARANTINE_KEY]
        args: list[Any] = [item.timestamp, item.weight, f"{item.name}:{id_generator()}:"]
        args.append(len(self.rates))
        for rate in self.rates:
            offset = self._algorithm.blocking_offset(rate, item.weight)
            window_start = self._algorithm.window_start(rate, item.timestamp)
            args += [window_start, rate.limit, -1 if offset is None else offset]
        index, blocking = (int(value) for value in self._script(keys=keys, args=args))
        if index == NO_EPOCH and self._guard is not None:
            self._guard.recover()
            index, blocking = (int(value) for value in self._script(keys=keys, args=args))
        if index == QUARANTINED:
            return Decision(failing_rate=self.rates[0], retry_after_ms=blocking)
        if index == NO_EPOCH:  # flushed again between the two evaluations: look again soon
            return Decision(failing_rate=self.rates[0], retry_after_ms=50)
        if index < 0:
            return ADMITTED
        rate = self.rates[index]
        if item.weight > self._algorithm.max_weight(rate):
            return Decision(failing_rate=rate)
        retry_after = self._algorithm.retry_after(
            rate, item.timestamp, blocking if blocking >= 0 else None
        )
        return Decision(failing_rate=rate, retry_after_ms=retry_after)

    def leak(self, current_timestamp: int | None = None) -> int:
        """Drop entries older than the window; a Redis outage skips a round instead of killing
        pyrate-limiter's leak thread (an uncaught error there stops leaking for good)."""
        try:
            return int(super().leak(current_timestamp))  # type: ignore[arg-type]
        except RedisError as exc:
            log.warning("ratelimit.leak_skipped reason=%s", type(exc).__name__)
            return 0
