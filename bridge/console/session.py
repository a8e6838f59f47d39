"""Console sessions: who is signed in, in a cookie signed with itsdangerous; no Flask here.

The cookie holds `who` (`admin` or a connection id), a fingerprint of the credential used
(so rotating the token or changing BRIDGE_ADMIN_TOKEN ends the sessions it opened) and the
CSRF token every form carries. It is signed (not encrypted) with a key derived from
BRIDGE_SECRET_KEY for the `console-session` purpose; old secret keys still verify during a
rotation. Nothing secret is in it: the fingerprint is a keyed hash of the credential's digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from bridge.infra import crypto

SALT = "console-session"
COOKIE = "zwb_console"
MAX_AGE_S = 8 * 3600
ADMIN = "admin"


@dataclass(frozen=True)
class Session:
    """A console session; `who` is None before sign-in (the sign-in form needs a CSRF token)."""

    csrf: str
    who: str | None = None
    fingerprint: str = ""

    @property
    def is_admin(self) -> bool:
        return self.who == ADMIN

    @property
    def connection_id(self) -> str | None:
        return self.who if self.who not in (None, ADMIN) else None


def anonymous() -> Session:
    return Session(csrf=secrets.token_urlsafe(32))


class SessionCodec:
    """Signs and reads session cookies with the app's secret keys (the first one signs)."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        # itsdangerous signs with the last key and verifies with all of them.
        self._serializer = URLSafeTimedSerializer(list(reversed(secret_keys)), salt=SALT)
        self._fingerprint_key = crypto.derive_key(secret_keys[0], "console-session/fingerprint")

    def __repr__(self) -> str:
        return "SessionCodec(<SECRET>)"

    def dumps(self, session: Session) -> str:
        body: dict[str, Any] = {"csrf": session.csrf}
        if session.who is not None:
            body.update(who=session.who, fp=session.fingerprint)
        return str(self._serializer.dumps(body))

    def loads(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None when absent, tampered with or older than 8 hours."""
        if not cookie:
            return None
        try:
            body = self._serializer.loads(cookie, max_age=MAX_AGE_S)
        except BadSignature:  # SignatureExpired is one
            return None
        if not isinstance(body, dict) or not isinstance(body.get("csrf"), str):
            return None
        who, fingerprint = body.get("who"), body.get("fp", "")
        if who is not None and not (isinstance(who, str) and isinstance(fingerprint, str)):
            return None
        return Session(csrf=body["csrf"], who=who, fingerprint=fingerprint)

    def fingerprint(self, digest: str) -> str:
        """A short keyed hash of a credential's SHA-256 digest (the connection's `token_hash`,
        or the admin token's hash)."""
        return hmac.new(self._fingerprint_key, digest.encode(), hashlib.sha256).hexdigest()[:32]


def same(expected: str, given: str | None) -> bool:
    """Constant-time comparison for CSRF tokens and fingerprints."""
    return bool(given) and crypto.same_secret(expected, given or "")
