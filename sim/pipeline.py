"""What happens around every upstream API request, in order.

Before the view: faults, body cap (413), profile path check (404), key check for the
route's auth family, per-key rate limit (429). After it: rate-limit headers, faults that
act on the response, and one request-log record. ``/__admin`` requests skip all of it.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException, NotFound

from . import fault_effects, reqlog, routing
from .auth import Auth, resolve
from .envelope import ApiError, html_response, text_response, unauthorized
from .faults import RequestFacts
from .state import current_store

ADMIN_PREFIX = "/__admin"


def init_app(app: Flask) -> None:
    app.before_request(_before)
    app.after_request(_after)
    app.register_error_handler(ApiError, _render_api_error)
    app.register_error_handler(HTTPException, _render_http_error)


def current_auth() -> Auth:
    auth: Auth = g.sim_auth
    return auth


def _before() -> Response | None:
    if request.path.startswith(ADMIN_PREFIX):
        return None
    store = current_store()
    g.sim_wall = time.time()
    with store.lock:
        g.sim_sim_at = store.now()
        g.sim_auth = auth = resolve(store, request.headers.get("Authorization"))
        facts = RequestFacts(request.path, request.method, auth.presented, _agent_ref())
        fired = store.faults.fire(facts, g.sim_sim_at)
    g.sim_fault_kinds = [rule.kind for rule in fired]
    replaced = fault_effects.apply(fired, store)
    if replaced is not None:
        return replaced
    _check_body_size(store.settings.max_body_bytes)
    route = routing.info(current_app, request.endpoint)
    if route is None:
        return None  # Flask raises its routing error (404/405) next
    if store.profile not in route.profiles:
        raise NotFound()
    if not auth.valid and (not store.legacy or route.family == "strict"):
        raise unauthorized()
    if auth.key is not None and store.settings.rate_limit_enabled:
        _rate_limit(auth)
    return None


def _agent_ref() -> str | None:
    args = request.view_args or {}
    ref = args.get("agent_id") or request.args.get("agentId")
    return str(ref) if ref else None


def _check_body_size(limit: int) -> None:
    length = request.content_length
    if length is None and request.method in ("POST", "PUT", "PATCH"):
        length = len(request.get_data(cache=True))
    if length is not None and length > limit:
        raise ApiError(
            413,
            "PAYLOAD_TOO_LARGE",
            f"Request body exceeds {limit} bytes.",
        )


def _rate_limit(auth: Auth) -> None:
    store = current_store()
    assert auth.key is not None and auth.org is not None
    limit = auth.key.rate_limit or auth.org.rate_limit
    with store.lock:
        verdict = store.limiter.hit(auth.key.key, limit, store.now())
    g.sim_rate = verdict
    if verdict.allowed:
        return
    headers = {} if store.legacy else {"Retry-After": str(verdict.retry_after)}
    raise ApiError(
        429,
        "RATE_LIMITED",
        "Rate limit exceeded.",
        legacy_body={"error": "RATE_LIMIT"},
        headers=headers,
    )


def _body_for_log(limit: int) -> Any:
    length = request.content_length
    if length is not None and length > limit:
        return f"<{length} bytes, not read>"
    return reqlog.loggable_body(request.get_data(cache=True))


def _render_api_error(error: ApiError) -> Response:
    store = current_store()
    if store.legacy and error.status == 413:
        return text_response(413, "Body exceeded 1mb limit")
    return error.render(store.legacy)


def _render_http_error(error: HTTPException) -> Response:
    """Unknown routes: documented JSON 404/405; legacy the framework's HTML page."""
    status = error.code or 500
    if request.path.startswith(ADMIN_PREFIX):
        return Response(f'{{"error": "{error.name}"}}', status=status, mimetype="application/json")
    if current_store().legacy:
        return html_response(status, "This page could not be found" if status == 404 else "Error")
    code = error.name.upper().replace(" ", "_")
    return ApiError(status, code, error.description or error.name).render(False)


def _after(response: Response) -> Response:
    if request.path.startswith(ADMIN_PREFIX) or "sim_wall" not in g:
        return response
    store = current_store()
    verdict = g.get("sim_rate")
    if verdict is not None:
        response.headers["X-RateLimit-Limit"] = str(verdict.limit)
        response.headers["X-RateLimit-Remaining"] = str(verdict.remaining)
    response = fault_effects.late(response, store)
    _record(response)
    return response


def _record(response: Response) -> None:
    store = current_store()
    auth: Auth | None = g.get("sim_auth")
    token = auth.presented if auth else None
    entry = {
        "at": g.sim_wall,
        "sim_at": g.sim_sim_at,
        "method": request.method,
        "path": request.path,
        "query": request.args.to_dict(flat=True),
        "body": _body_for_log(store.settings.max_body_bytes),
        "headers": reqlog.masked_headers(dict(request.headers)),
        "key_hash": reqlog.key_hash(token) if token else None,
        "key_last4": token[-4:] if token else None,
        "status": 0 if g.get("sim_reset") else response.status_code,
        "faults": g.get("sim_fault_kinds", []),
        "duration_s": round(time.time() - g.sim_wall, 4),
    }
    with store.lock:
        store.log.add(entry)
