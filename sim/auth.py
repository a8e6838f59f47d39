"""Reading ``Authorization`` like the ancestor, and deciding who may see what.

The ancestor takes the second space-separated token and ignores the scheme word, so
``Bearer  key`` (two spaces) yields an empty key. The documented profile also insists on
the ``Bearer`` scheme. Strict routes reject a bad key outright (401, or legacy 403
``Forbidden``); lazy legacy routes treat it as no key and serve public resources.
"""

from __future__ import annotations

from dataclasses import dataclass

from .envelope import ApiError, forbidden, unauthorized
from .models import ApiKey, Org
from .state import Store


@dataclass(frozen=True)
class Auth:
    """The presented token (for logs and fault matching) and the key it resolves to."""

    presented: str | None
    key: ApiKey | None
    org: Org | None

    @property
    def valid(self) -> bool:
        return self.org is not None


def presented_token(header: str | None) -> str | None:
    """Return the second space-separated token of the header, or None."""
    if not header:
        return None
    parts = header.split(" ")
    return parts[1] if len(parts) > 1 and parts[1] else None


def resolve(store: Store, header: str | None) -> Auth:
    """Look the presented key up; revoked, unknown or malformed keys resolve to no org."""
    token = presented_token(header)
    scheme_ok = store.legacy or (header or "").split(" ")[0].lower() == "bearer"
    key = store.keys.get(token) if token and scheme_ok else None
    if key is None or key.revoked or key.org_id not in store.orgs:
        return Auth(token, None, None)
    return Auth(token, key, store.orgs[key.org_id])


def require_owner(auth: Auth, org_id: str) -> Org:
    """Strict access: a valid key of the owning org, else a key failure or 403.

    Raises:
        ApiError: 401/403 ``Forbidden`` without a valid key, 403 for another org.
    """
    if auth.org is None:
        raise unauthorized()
    if auth.org.id != org_id:
        raise forbidden()
    return auth.org


def require_visible(store: Store, auth: Auth, org_id: str, visibility: str) -> None:
    """Lazy access: legacy serves public resources to anyone, private ones to the owner.

    Raises:
        ApiError: 401 (documented, bad key) or 403 (private resource of another org or none).
    """
    if store.legacy:
        if visibility == "public" or (auth.org is not None and auth.org.id == org_id):
            return
        raise ApiError(403, "UNAUTHORIZED", "Unauthorized.")
    require_owner(auth, org_id)
