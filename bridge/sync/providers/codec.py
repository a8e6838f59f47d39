"""Keys, MACs and signature encodings: the byte-level half of every HMAC scheme."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from bridge.sync.providers.errors import VerificationError
from bridge.sync.providers.schemes import Algorithm, Encoding, KeyHandling

_HEX = re.compile(r"[0-9a-fA-F]+")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
WHSEC = "whsec_"


def derive_key(handling: KeyHandling, secret: str) -> bytes | None:
    """Return the HMAC key for `secret`, or None when it cannot be one (bad base64).

    Stripe and Standard Webhooks both write secrets as `whsec_...` but disagree on the key:
    Stripe uses the whole text, Standard Webhooks the base64-decoded rest. Keeping the two
    apart is what makes a secret from one fail on the other.
    """
    if handling != "whsec-base64":
        return secret.encode("utf-8")
    encoded = secret.removeprefix(WHSEC)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def mac(algorithm: Algorithm, key: bytes, content: bytes) -> bytes:
    """Return the raw HMAC of `content`."""
    return hmac.new(key, content, getattr(hashlib, algorithm)).digest()


def digest_size(algorithm: Algorithm) -> int:
    """Return the MAC length in bytes, used to reject truncated or padded signatures early."""
    return int(getattr(hashlib, algorithm)().digest_size)


def encode(encoding: Encoding, raw: bytes) -> str:
    """Write a MAC the way the provider writes it."""
    if encoding == "hex":
        return raw.hex()
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(encoding: Encoding, text: str, size: int) -> bytes:
    """Read a MAC written by the provider, so that MACs (not strings) are compared.

    Raises:
        VerificationError: 400 `malformed-signature` when `text` is not `size` bytes in
            the provider's encoding.
    """
    try:
        raw = _decode(encoding, text)
    except (binascii.Error, ValueError):
        raw = None
    if raw is None or len(raw) != size:
        raise VerificationError("malformed-signature", 400)
    return raw


def _decode(encoding: Encoding, text: str) -> bytes | None:
    if encoding == "hex":
        return bytes.fromhex(text) if _HEX.fullmatch(text) else None
    if encoding == "base64":
        return base64.b64decode(text, validate=True)
    if not _B64URL.fullmatch(text):
        return None
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
