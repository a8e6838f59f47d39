"""Signing in to the console: which credential a token is, and how often anyone may try.

The admin token signs in as the operator (every connection); a connection token signs in to
its own connection only, through `connections.service.authenticate`, so a revoked or unknown
token is refused for the same reason the API gives. Attempts are limited per source address
and per token prefix with pyrate-limiter on the same shared backend as the ZappWay budgets
(`bridge.upstream.ratelimit.SharedBuckets`: Redis, PostgreSQL or a locked SQLite file), so the
limit holds across every web process. Those backends keep one bucket (a table, on SQL) per name,
so addresses and prefixes are hashed into `SHARDS` buckets each: two callers in one shard share
its budget, which can only make the limit stricter, and the number of buckets stays bounded.
"""

from __future__ import annotations

import hashlib
import math
import threading

from pyrate_limiter import Limiter

from bridge.config import Settings
from bridge.connections import service as connections
from bridge.console.session import ADMIN, Session, SessionCodec
from bridge.infra import crypto
from bridge.infra.errors import BridgeError, ClientError
from bridge.infra.hot_reads import HotReads
from bridge.upstream.ratelimit import SharedBuckets

PER_ADDRESS = 10  # attempts per minute from one address (shard)
PER_PREFIX = 10  # attempts per minute naming one token prefix (shard)
WINDOW_MS = 60_000
SHARDS = 256
PREFIX_CHARS = 12  # "zwb_" and 8 characters of a connection token


class TooManySignIns(BridgeError):
    """Raised when an address or a token prefix has tried to sign in too often this minute."""

    status_code = 429
    code = "too_many_sign_ins"
    default_message = "Too many sign-in attempts; wait a minute and try again"

    def __init__(self, retry_after: float) -> None:
        super().__init__()
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


def bucket_name(kind: str, value: str) -> str:
    shard = hashlib.sha256(f"console-sign-in/{kind}/{value}".encode()).hexdigest()[:2]
    return f"signin_{kind}_{shard}"


class SignInLimiter:
    """Admits sign-in attempts within both budgets; built on first use (no backend otherwise)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._buckets: SharedBuckets | None = None
        self._limiter: Limiter | None = None

    def admit(self, address: str, token: str) -> None:
        """Take one attempt from the address's and the token prefix's budgets.

        Raises:
            TooManySignIns: either budget is spent for this minute.
        """
        buckets, limiter = self._open()
        for name, limit in (
            (bucket_name("ip", address), PER_ADDRESS),
            (bucket_name("prefix", token[:PREFIX_CHARS]), PER_PREFIX),
        ):
            buckets.set_limit(name, limit)
            if not limiter.try_acquire(name, blocking=False):
                raise TooManySignIns(buckets.wait_ms(name) / 1000)

    def _open(self) -> tuple[SharedBuckets, Limiter]:
        with self._lock:
            if self._buckets is None or self._limiter is None:
                self._buckets = SharedBuckets(self._settings, WINDOW_MS)
                self._limiter = Limiter(self._buckets, buffer_ms=20)
            return self._buckets, self._limiter

    def close(self) -> None:
        with self._lock:
            if self._buckets is not None:
                self._buckets.close()
            self._buckets = self._limiter = None


class SignInRefused(ClientError):
    """Raised when the token is neither the admin token nor a live connection's token."""

    def __init__(self, message: str) -> None:
        super().__init__(401, "sign_in_refused", message)


def sign_in(reads: HotReads, settings: Settings, codec: SessionCodec, token: str) -> Session:
    """The session a token opens.

    Raises:
        SignInRefused: the token is wrong, or the connection is unknown or revoked.
    """
    token = token.strip()
    admin = settings.admin_token
    if admin and crypto.same_secret(token, admin):
        return Session(csrf="", who=ADMIN, fingerprint=codec.fingerprint(crypto.hash_token(admin)))
    if not token.startswith(crypto.TOKEN_PREFIX):
        raise SignInRefused("That is neither the admin token nor a connection token (zwb_...)")
    try:
        connection = connections.authenticate(reads, token)
    except connections.ConnectionAuthError as exc:
        raise SignInRefused(exc.message) from exc
    return Session(csrf="", who=connection.id, fingerprint=codec.fingerprint(connection.token_hash))
