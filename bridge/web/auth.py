"""Who is calling: connection tokens for platforms, the admin token for operators.

Platforms send `Authorization: Bearer <token>`; tools that can set only one custom header send
`X-API-Key: <token>`. Errors say which of missing / malformed / unknown / revoked applies and
nothing about other tenants.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request

from bridge.connections import service as connections
from bridge.infra import crypto
from bridge.infra.errors import ClientError
from bridge.infra.models import Connection
from bridge.web import context
from bridge.web.context import get_session

F = TypeVar("F", bound=Callable[..., Any])


def presented_token() -> str | None:
    """Read the token from Authorization (Bearer) or X-API-Key.

    Raises:
        ConnectionAuthError: when Authorization uses another scheme or is malformed.
    """
    header = request.headers.get("Authorization", "").strip()
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise connections.ConnectionAuthError(
                "malformed_credentials", "Malformed Authorization header: expected 'Bearer <token>'"
            )
        return value.strip()
    return request.headers.get("X-API-Key", "").strip() or None


def current_caller() -> connections.Credential:
    """Authenticate the request once (one indexed read) and remember the credential on `g`.

    The read holds no connection past itself (`HotReads`): an action may then wait seconds on
    ZappWay, and holding a pooled database connection (or SQLite's read snapshot) through that
    wait starves the pool under load.
    """
    if "caller" not in g:
        g.caller = connections.authenticate(context.runtime().reads, presented_token())
    return cast(connections.Credential, g.caller)


def current_connection() -> Connection:
    """The caller's connection row, for the views that manage it (rotate, revoke, describe)."""
    caller = current_caller()
    connection = get_session().get(Connection, caller.id)
    if connection is None or connection.is_revoked:  # revoked since the credential was read
        raise connections.ConnectionRevoked(caller.id)
    return connection


def require_connection(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current_caller()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def is_admin() -> bool:
    configured = context.settings().admin_token
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(configured) and bool(token) and crypto.same_secret(token, configured)


def require_admin(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not context.settings().admin_token:
            raise ClientError(
                403, "admin_disabled", "Admin API is disabled: set BRIDGE_ADMIN_TOKEN"
            )
        if not is_admin():
            raise ClientError(401, "admin_unauthorized", "Admin token missing or wrong")
        return view(*args, **kwargs)

    return cast(F, wrapper)
