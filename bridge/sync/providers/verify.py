"""Check that a webhook request comes from the source's configured sender.

The verifier is chosen by the source's provider record, never by sniffing headers:
Storyblok and Standard Webhooks both send `webhook-signature`. All checks run on the raw
body bytes, compare decoded MACs (or token digests) with `hmac.compare_digest`, take the
clock as `now`, and accept any of several secrets so rotations overlap.

Order of checks: signature header present (401) and well-formed (400), companion headers
present (400), timestamp well-formed (400) and inside the window (401 `stale`), then the
MAC (401 `bad-signature`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from bridge.sync.providers import codec
from bridge.sync.providers.content import signed_content
from bridge.sync.providers.errors import VerificationError
from bridge.sync.providers.generic import GenericConfig
from bridge.sync.providers.parse import parse_signature
from bridge.sync.providers.providers import Provider
from bridge.sync.providers.schemes import HmacScheme, Scheme, Timestamp, TokenScheme

__all__ = ["VerificationError", "scheme_for", "verify"]

_DIGITS = re.compile(r"[0-9]{1,16}")


def scheme_for(provider: Provider, config: GenericConfig | None = None) -> Scheme:
    """Return the scheme to check: the provider's own, or the source's generic recipe.

    Raises:
        VerificationError: 401 `not-configured` for `generic_hmac` without a config.
    """
    if provider.scheme is not None:
        return provider.scheme
    if config is None:
        raise VerificationError("not-configured", 401)
    return config.scheme()


def verify(
    provider: Provider,
    secrets: Sequence[str],
    raw_body: bytes,
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    now: float,
    config: GenericConfig | None = None,
) -> None:
    """Return if the request is authentic for `provider` under any of `secrets`.

    `path` is the request path and query exactly as received (Contentful signs it);
    `now` is Unix seconds.

    Raises:
        VerificationError: 400 for malformed or missing companion headers; 401 for a
            missing or wrong signature or token, no usable secret, or a stale timestamp.
    """
    scheme = scheme_for(provider, config)
    lower = {name.lower(): value for name, value in headers.items()}
    usable = [secret for secret in secrets if secret]
    if not usable:
        raise VerificationError("no-secret", 401)
    if isinstance(scheme, TokenScheme):
        _verify_token(scheme, usable, lower)
        return
    value = lower.get(scheme.header.lower(), "")
    if not value.strip():
        raise VerificationError("missing-signature", 401)
    parsed = parse_signature(scheme, value)
    timestamp = _checked_timestamp(scheme, parsed.timestamp, lower, now)
    content = signed_content(scheme, raw_body, lower, timestamp=timestamp, method=method, path=path)
    if not _any_match(scheme, usable, content, parsed.signatures):
        raise VerificationError("bad-signature", 401)


def _checked_timestamp(
    scheme: HmacScheme, from_signature: str | None, headers: Mapping[str, str], now: float
) -> str | None:
    stamp = scheme.timestamp
    if stamp is None:
        return None
    text = from_signature if stamp.source == "signature" else headers.get(stamp.name.lower())
    if text is None:
        raise VerificationError("missing-header", 400)
    text = text.strip()
    if not _DIGITS.fullmatch(text):
        raise VerificationError("malformed-timestamp", 400)
    if abs(now - _seconds(stamp, int(text))) > stamp.window_s:
        raise VerificationError("stale", 401)
    return text


def _seconds(stamp: Timestamp, value: int) -> float:
    return value / 1000 if stamp.unit == "ms" else float(value)


def _any_match(
    scheme: HmacScheme, secrets: Sequence[str], content: bytes, offered: Sequence[bytes]
) -> bool:
    matched = False
    for secret in secrets:
        key = codec.derive_key(scheme.key, secret)
        if key is None:
            continue
        expected = codec.mac(scheme.algorithm, key, content)
        for signature in offered:
            matched |= hmac.compare_digest(expected, signature)
    return matched


def _verify_token(scheme: TokenScheme, secrets: Sequence[str], headers: Mapping[str, str]) -> None:
    value = headers.get(scheme.header.lower(), "").strip()
    if not value:
        raise VerificationError("missing-token", 401)
    if scheme.prefix:
        if value[: len(scheme.prefix)].lower() != scheme.prefix.lower():
            raise VerificationError("malformed-token", 400)
        value = value[len(scheme.prefix) :].strip()
    # Digests have a fixed length, so the comparison time says nothing about token length.
    offered = hashlib.sha256(value.encode("utf-8")).digest()
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(hashlib.sha256(secret.encode("utf-8")).digest(), offered)
    if not matched:
        raise VerificationError("bad-token", 401)
