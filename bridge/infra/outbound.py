"""The outbound HTTP client for user-supplied URLs (hook targets, job callbacks, CMS fetches).

Every request resolves the target, checks every address with `bridge.infra.netguard`, and connects
to the checked address itself (Host header and TLS SNI keep the original name), so DNS rebinding
between check and connect cannot redirect it. Redirects are never followed. Bodies are signed
per Standard Webhooks with the `standardwebhooks` library. The timeout is a deadline for the
whole attempt (httpx's own timeouts are per read, so a receiver trickling bytes could hold a
worker for ever) and answers are read only up to a cap.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from bridge.infra import netguard
from bridge.infra.backoff import parse_retry_after

USER_AGENT = "zappway-bridge-delivery/0.1"
ANSWER_CAP = 64 * 1024
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})


class DeadlinePassed(Exception):
    """Raised when an answer is still arriving at the attempt's deadline."""


class TooLarge(Exception):
    """Raised when an answer is bigger than the caller's cap."""


class MalformedURL(Exception):
    """Raised when the URL cannot be requested at all (refused before any connection)."""


class TransportFailed(Exception):
    """Raised when no HTTP answer came back: the connection failed or a read timed out.

    The HTTP library's exceptions stop here, so callers outside this module never import it.
    """

    def __init__(self, kind: str, *, timed_out: bool) -> None:
        super().__init__(kind)
        self.kind = kind
        self.timed_out = timed_out


@dataclass(frozen=True)
class Fetched:
    """A bounded GET's answer: status, headers and at most `cap` bytes of body."""

    status: int
    headers: httpx.Headers
    body: bytes


@dataclass(frozen=True)
class PostOutcome:
    """What happened to one signed POST (status 0 when no HTTP answer came back)."""

    status: int
    latency_ms: int
    error: str | None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class PinnedTransport(httpx.HTTPTransport):
    """Connects to the address that passed the SSRF check, never to a fresh DNS answer."""

    def __init__(self, allow_private: bool) -> None:
        super().__init__(retries=0)
        self._allow_private = allow_private

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        address = netguard.resolve_public(host, port, self._allow_private)[0]
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        ip_host = f"[{address}]" if address.version == 6 else str(address)
        request.url = request.url.copy_with(host=ip_host.strip("[]"))
        return super().handle_request(request)


class OutboundClient:
    """Requests to user URLs, SSRF-checked, under a deadline; signed JSON POSTs; one pooled
    connection pool per process."""

    def __init__(self, allow_private: bool, timeout_s: float = 10.0) -> None:
        self.allow_private = allow_private
        self._timeout = timeout_s
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    transport=PinnedTransport(self.allow_private),
                    timeout=httpx.Timeout(self._timeout, connect=5.0),
                    follow_redirects=False,
                    headers={"User-Agent": USER_AGENT},
                )
            return self._client

    def post(self, url: str, message_id: str, payload: Any, secret: str) -> PostOutcome:
        """POST one signed message and report the outcome (never raises for HTTP failures)."""
        body = json.dumps(payload, separators=(",", ":"), default=str)
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, now, body),
        }
        started = time.monotonic()
        try:
            answer = self.request("POST", url, headers=headers, content=body, cap=ANSWER_CAP)
        except netguard.UnsafeTarget as exc:
            return PostOutcome(0, 0, f"unsafe target: {exc}")
        except DeadlinePassed:
            return PostOutcome(0, _ms(started), "timeout")
        except TransportFailed as exc:
            error = "timeout" if exc.timed_out else f"connection failed: {exc.kind}"
            return PostOutcome(0, _ms(started), error)
        except TooLarge:
            return PostOutcome(0, _ms(started), "answer too large")
        except MalformedURL:
            return PostOutcome(0, _ms(started), "connection failed: InvalidURL")
        retry_after = None
        if answer.status in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(answer.headers.get("retry-after"))
        return PostOutcome(answer.status, _ms(started), None, retry_after)

    def request(
        self, method: str, url: str, *, headers: dict[str, str], content: str | None = None,
        cap: int,
    ) -> Fetched:  # fmt: skip
        """One SSRF-checked request whose whole exchange ends by the deadline.

        Raises:
            netguard.UnsafeTarget: the URL is not a public http(s) target.
            DeadlinePassed: the answer was still arriving at the deadline.
            TooLarge: the answer's body exceeds `cap` bytes.
            MalformedURL: the URL cannot be requested.
            TransportFailed: the connection failed or a read timed out.
        """
        netguard.check_url_shape(url)
        deadline = time.monotonic() + self._timeout
        try:
            with self.client.stream(method, url, headers=headers, content=content) as response:
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise TooLarge
                    if time.monotonic() > deadline:
                        raise DeadlinePassed
                    chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise DeadlinePassed
                return Fetched(response.status_code, response.headers, b"".join(chunks))
        except netguard.UnsafeTarget:
            raise  # the pinned transport's re-check at connect time
        except (httpx.InvalidURL, ValueError) as exc:
            raise MalformedURL(str(exc)) from exc
        except httpx.HTTPError as exc:
            timed_out = isinstance(exc, httpx.TimeoutException)
            raise TransportFailed(type(exc).__name__, timed_out=timed_out) from exc

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
