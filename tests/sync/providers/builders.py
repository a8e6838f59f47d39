"""A builder for valid signed webhook requests; each test then breaks exactly one thing."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.sync.providers.generic import GenericConfig
from bridge.sync.providers.mapping import Change, delivery_key, map_event
from bridge.sync.providers.providers import PROVIDERS, Provider
from bridge.sync.providers.signing import sign
from bridge.sync.providers.verify import verify
from tests.sync.providers.samples import NOW, SAMPLES


@dataclass(frozen=True)
class SignedRequest:
    """A webhook request as the route sees it, plus the source's secrets and the clock."""

    provider: Provider
    body: bytes
    headers: dict[str, str]
    secrets: tuple[str, ...]
    now: float
    path: str
    method: str = "POST"
    config: GenericConfig | None = None

    def verify(self) -> None:
        verify(
            self.provider,
            self.secrets,
            self.body,
            self.headers,
            method=self.method,
            path=self.path,
            now=self.now,
            config=self.config,
        )

    def payload(self) -> Any:
        return json.loads(self.body)

    def changes(self) -> list[Change]:
        return map_event(
            self.provider, self.payload(), self.headers, self.config, received_at=self.now
        )

    def delivery_key(self) -> str | None:
        return delivery_key(self.provider, self.payload(), self.headers, self.config)

    def but(self, **changes: Any) -> SignedRequest:
        return dataclasses.replace(self, **changes)

    def with_header(self, name: str, value: str) -> SignedRequest:
        kept = {k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        return self.but(headers={**kept, name: value})

    def without_header(self, name: str) -> SignedRequest:
        return self.but(
            headers={k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        )

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers.items() if k.lower() == name.lower())

    def tampered(self) -> SignedRequest:
        """Flip one bit in the middle of the body."""
        middle = len(self.body) // 2
        flipped = bytes([self.body[middle] ^ 0x01])
        return self.but(body=self.body[:middle] + flipped + self.body[middle + 1 :])


def signed(
    key: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    signing_secrets: Sequence[str] | None = None,
    secrets: Sequence[str] | None = None,
    signed_at: float = NOW,
    config: GenericConfig | None = None,
    provider: Provider | None = None,
) -> SignedRequest:
    """Return the provider's sample (or `body`) signed exactly as the provider would sign it."""
    sample = SAMPLES[key]
    chosen = provider or PROVIDERS[key]
    config = config or sample.config
    base = {**sample.headers, **(headers or {})}
    signing = list(signing_secrets or [sample.secret])
    raw = sample.body if body is None else body
    out = sign(chosen, signing, raw, now=signed_at, path=sample.path, headers=base, config=config)
    return SignedRequest(
        provider=chosen,
        body=raw,
        headers=out,
        secrets=tuple(secrets or [sample.secret]),
        now=signed_at,
        path=sample.path,
        config=config,
    )
