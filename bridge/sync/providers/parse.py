"""Reading signature headers into candidate MACs, failing closed on anything malformed.

Every malformed value (`garbage`, `t=abc`, `v1,a,b`, extra commas, non-hex) becomes a
400 `VerificationError` here, never a `ValueError` that would surface as a 500.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.sync.providers import codec
from bridge.sync.providers.errors import VerificationError
from bridge.sync.providers.schemes import HmacScheme

MAX_HEADER = 4096


@dataclass(frozen=True)
class Parsed:
    """The MACs a signature header offers, and the timestamp it carries (kv formats)."""

    signatures: tuple[bytes, ...]
    timestamp: str | None = None


def parse_signature(scheme: HmacScheme, value: str) -> Parsed:
    """Parse a signature header value according to the scheme's format.

    Raises:
        VerificationError: 400 `malformed-signature` for any value that does not follow
            the provider's format.
    """
    value = value.strip()
    if len(value) > MAX_HEADER:
        raise VerificationError("malformed-signature", 400)
    size = codec.digest_size(scheme.algorithm)
    if scheme.format == "kv":
        return _parse_kv(scheme, value, size)
    if scheme.format == "items":
        return _parse_items(scheme, value, size)
    if not value.startswith(scheme.prefix):
        raise VerificationError("malformed-signature", 400)
    return Parsed((codec.decode(scheme.encoding, value[len(scheme.prefix) :], size),))


def _parse_kv(scheme: HmacScheme, value: str, size: int) -> Parsed:
    """Stripe `t=..,v1=..`, Sanity `t=..,v1=..`, Ghost `sha256=.., t=..`; unknown keys (v0) skip."""
    stamp_key = scheme.timestamp.name if scheme.timestamp is not None else None
    signatures: list[bytes] = []
    stamps: list[str] = []
    for part in value.split(","):
        key, sep, item = part.strip().partition("=")
        if not sep or not key or not item:
            raise VerificationError("malformed-signature", 400)
        if key == scheme.sig_key:
            signatures.append(codec.decode(scheme.encoding, item, size))
        elif key == stamp_key:
            stamps.append(item)
    if not signatures or (stamp_key is not None and len(stamps) != 1):
        raise VerificationError("malformed-signature", 400)
    return Parsed(tuple(signatures), stamps[0] if stamps else None)


def _parse_items(scheme: HmacScheme, value: str, size: int) -> Parsed:
    """Standard Webhooks: space-separated `v1,<base64>`; other versions (`v1a`) are skipped."""
    signatures: list[bytes] = []
    for item in value.split():
        version, sep, signature = item.partition(",")
        if not sep or not version or not signature or "," in signature:
            raise VerificationError("malformed-signature", 400)
        if version == scheme.sig_key:
            signatures.append(codec.decode(scheme.encoding, signature, size))
    return Parsed(tuple(signatures))
