"""Outbound POSTs to user-supplied URLs (job callbacks, hook targets), signed and SSRF-safe.

Every request resolves the target, checks every address with `bridge.netguard`, and connects to
the checked address itself (Host header and TLS SNI keep the original name), so DNS rebinding
between check and connect cannot redirect it. Redirects are never followed. Bodies are signed
per Standard Webhooks with the `standardwebhooks` library.
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

from bridge import netguard

USER_AGENT = "zappway-bridge-delivery/0.1"


@dataclass(frozen=True)
class Attempt:
    """What happened to one delivery attempt (status 0 when no HTTP answer came back)."""

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


class Deliverer:
    """Sends signed JSON to user URLs with a short timeout; one pooled client per process."""

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

    def post(self, url: str, message_id: str, payload: Any, secret: str) -> Attempt:
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
            netguard.check_url_shape(url)
            response = self.client.post(url, content=body, headers=headers)
        except netguard.UnsafeTarget as exc:
            return Attempt(0, 0, f"unsafe target: {exc}")
        except httpx.TimeoutException:
            return Attempt(0, _ms(started), "timeout")
        except httpx.HTTPError as exc:
            return Attempt(0, _ms(started), f"connection failed: {type(exc).__name__}")
        retry_after = None
        if response.status_code == 429:
            from bridge.upstream_errors import parse_retry_after

            retry_after = parse_retry_after(response.headers.get("retry-after"))
        return Attempt(response.status_code, _ms(started), None, retry_after)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
