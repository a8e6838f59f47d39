"""Secrets at rest and bridge credentials: encryption, hashing, constant-time comparison.

ZappWay keys are encrypted with MultiFernet keyed from BRIDGE_SECRET_KEY (HKDF, one derived key
per purpose), so the master secret can rotate: the new secret encrypts, old ones still decrypt
until `flask --app bridge connections reencrypt` has rewritten every row. Connection tokens are
random and only their SHA-256 is stored: a leaked database yields no usable credential.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bridge.infra.errors import InternalError

TOKEN_PREFIX = "zwb_"  # noqa: S105 (a public prefix that makes leaked tokens greppable)
TOKEN_BYTES = 32
# The prefix, then URL-safe base64 (43 characters for 32 bytes; some slack either way).
_TOKEN_SHAPE = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{40,64}")


class DecryptionError(InternalError):
    """Raised when a stored secret cannot be decrypted with any configured key: the operator
    changed BRIDGE_SECRET_KEY without listing the old one in BRIDGE_OLD_SECRET_KEYS."""

    code = "stored_key_unreadable"
    default_message = (
        "The bridge cannot decrypt this connection's stored key (server secret changed)"
    )


def derive_key(secret: str, purpose: str) -> bytes:
    """Derive a 32-byte key for one purpose from the master secret."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(secret.encode())


class SecretBox:
    """Encrypts and decrypts stored secrets; the first key encrypts, all keys decrypt."""

    PURPOSE = "zappway-bridge/stored-secrets/v1"

    def __init__(self, secret_keys: Iterable[str]) -> None:
        fernets = [
            Fernet(base64.urlsafe_b64encode(derive_key(key, self.PURPOSE))) for key in secret_keys
        ]
        if not fernets:
            raise ValueError("at least one secret key is required")
        self._multi = MultiFernet(fernets)

    def __repr__(self) -> str:
        return "SecretBox(<SECRET>)"

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Return the plaintext.

        Raises:
            DecryptionError: when no configured key can decrypt (the secret key changed).
        """
        try:
            return self._multi.decrypt(ciphertext.encode("ascii")).decode()
        except InvalidToken as exc:
            raise DecryptionError() from exc

    def decrypt_cached(self, ciphertext: str) -> str:
        """`decrypt`, remembered per process by ciphertext (Fernet costs ~20 us a call).

        Safe because a ciphertext never changes meaning: a rotated key or secret is stored as a
        new ciphertext, and whether it may still be used is decided by the row read on every
        request, never by this cache. Bounded; plaintexts never leave the process.
        """
        return _decrypt_once(self, ciphertext)

    def rotate(self, ciphertext: str) -> str:
        """Re-encrypt under the primary key (used after BRIDGE_SECRET_KEY changes)."""
        try:
            return self._multi.rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise DecryptionError() from exc


@functools.lru_cache(maxsize=4096)
def _decrypt_once(box: SecretBox, ciphertext: str) -> str:
    return box.decrypt(ciphertext)


def new_connection_token() -> str:
    """Return a fresh connection token: recognisable prefix plus 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def new_signing_secret() -> str:
    """Return a Standard Webhooks signing secret (`whsec_` + base64 of 32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def looks_like_token(value: str) -> bool:
    """Tell a well-formed connection token from garbage without touching storage."""
    return _TOKEN_SHAPE.fullmatch(value) is not None


def hash_token(token: str) -> str:
    """Return the stored form of a token (hex SHA-256; tokens have 256 bits of entropy)."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(a: str, b: str) -> bool:
    """Compare two secrets in constant time."""
    return hmac.compare_digest(a.encode(), b.encode())


@functools.lru_cache(maxsize=4096)
def fingerprint(secret: str) -> str:
    """Return a short, non-reversible name for a secret (rate-limit buckets, logs); remembered
    per process, since every upstream call names its key's bucket."""
    return hashlib.sha256(b"zappway-bridge/fingerprint/" + secret.encode()).hexdigest()[:24]


def last4(secret: str) -> str:
    """The end of a secret, to tell it apart in listings: its last 4 characters, but never more
    than a quarter of it (ZappWay's key format is unstated, so a short key is accepted, and
    showing 4 characters of it would show most or all of it)."""
    shown = min(4, len(secret) // 4)
    return secret[-shown:] if shown else ""
