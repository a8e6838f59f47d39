"""What a request may use: the app's services by type, and the request's database session.

`create_app` registers each service object under its own class (`register`), so views ask for
`service(SyncTasks)` and get a `SyncTasks`, checked by mypy, instead of reading string-keyed
dictionaries. The request's session is opened on first use and closed on teardown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from flask import Flask, Request, current_app, g, request
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from bridge.config import Settings
from bridge.runtime import Runtime

T = TypeVar("T")
KEY = "bridge.services"


def register(app: Flask, services: Mapping[type[Any], Any]) -> None:
    """Make each object the app's one instance of the class it is listed under (the queue is a
    `Huey` whatever its backend); close the request session on teardown."""
    for kind, item in services.items():
        if not isinstance(item, kind):
            raise TypeError(f"{item!r} is not a {kind.__name__}")
    app.extensions[KEY] = dict(services)
    app.teardown_appcontext(_close_db)


def service_of(app: Flask, kind: type[T]) -> T:
    """The app's instance of `kind` (tests and the worker, outside a request)."""
    return cast(T, app.extensions[KEY][kind])


def service(kind: type[T]) -> T:
    """The current app's instance of `kind`."""
    return service_of(current_app, kind)


def runtime() -> Runtime:
    return service(Runtime)


def settings() -> Settings:
    return runtime().settings


def get_session() -> Session:
    """The current request's session, opened on first use and closed on teardown."""
    if "db_session" not in g:
        g.db_session = runtime().sessions()
    session: Session = g.db_session
    return session


def attribute(connection_id: str) -> None:
    """Say which connection this request is for when no token named it (an inbound webhook's
    source belongs to one): its activity is then recorded for that connection."""
    g.attributed_connection_id = connection_id


def request_connection_id() -> str | None:
    """The connection this request authenticated as (or was attributed to), if any."""
    state = g._get_current_object()  # one context lookup: this runs on every request
    caller = state.get("caller")  # bridge.web.auth.current_caller's credential
    if caller is not None:
        return cast(str, caller.id)
    return cast("str | None", state.get("attributed_connection_id"))


def client_address() -> str:
    """The caller's address (see `address_of`)."""
    return address_of(current_request(), settings().proxy_hops)


def current_request() -> Request:
    """The request itself rather than its proxy (for code that reads it many times)."""
    return cast(Request, request._get_current_object())  # type: ignore[attr-defined]


def address_of(current: Request, proxy_hops: int) -> str:
    """The peer's address, or with BRIDGE_PROXY_HOPS=N behind N trusted proxies the Nth address
    from the right of X-Forwarded-For (each proxy appends the one it saw; what the client itself
    wrote there is further left and never trusted)."""
    if proxy_hops:
        forwarded = current.headers.get("X-Forwarded-For", "").split(",")
        chain = [part.strip() for part in forwarded if part.strip()]
        if len(chain) >= proxy_hops:
            return chain[-proxy_hops][:64]
    return (current.remote_addr or "unknown")[:64]


def _close_db(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def trust_proxy_scheme(app: Flask, proxy_hops: int) -> None:
    """Behind BRIDGE_PROXY_HOPS trusted proxies, take the scheme the last one saw
    (`X-Forwarded-Proto`): Heroku's router ends TLS and forwards plain HTTP, and an `http`
    status_url would have platforms send their token in clear text. Only the scheme: the
    caller's address is `address_of`'s, and the Host header already names the bridge."""
    if proxy_hops:
        proxied = ProxyFix(app.wsgi_app, x_for=0, x_proto=proxy_hops, x_host=0)
        app.wsgi_app = proxied  # type: ignore[method-assign]


def absolute_url(path: str) -> str:
    """`path` on this bridge, as the caller reached it: a URL a platform can follow as is
    (a relative `status_url` means nothing to a Zap step that only stores it)."""
    return request.host_url.rstrip("/") + path
