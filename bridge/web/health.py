"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: database, Redis, the
queue's backlog, the worker's heartbeat)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from huey import Huey

from bridge.infra import queue, storage
from bridge.web.api import Answer, Endpoint, endpoint
from bridge.web.context import runtime, service

bp = Blueprint("health", __name__)


PROBE = {200: Answer({"type": "object"}), 503: Answer({"type": "object"}, "Not ready")}


@bp.get("/healthz")
@endpoint(Endpoint("Liveness", {200: Answer({"type": "object"})}, secured=False))
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@endpoint(Endpoint("Readiness", PROBE, secured=False))
def readyz() -> tuple[Response, int]:
    """Check every dependency; 503 names the one that is down or, for a database without the
    bridge's tables, `not_migrated` (no connection strings shown).

    Reports the database, Redis (when configured), the queue's backlog and when a worker was
    last seen; a worker not seen for `BRIDGE_WORKER_GONE_AFTER` makes the bridge not ready
    (queued work would wait for ever). A worker never seen yet is reported, not failed: the
    web process may start first, and the immediate queue of tests has none.
    """
    settings = runtime().settings
    checks: dict[str, Any] = {}
    engine = runtime().engine
    try:
        storage.ping(engine)
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unreachable"
    if settings.redis_url:
        checks["redis"] = "ok" if queue.redis_reachable(settings.redis_url) else "unreachable"
    try:
        checks["backlog"] = queue.backlog(service(Huey))
        checks["queue"] = "ok"
    except Exception:
        checks["queue"] = "unreachable"
    checks["worker_last_seen_s"] = None
    if checks["database"] == "ok":
        try:
            checks["worker_last_seen_s"] = queue.last_beat_age_s(engine)
        except Exception:  # reachable but without our tables: `flask --app bridge migrate`
            checks["database"] = "not_migrated"
    database_up = checks["database"] == "ok"
    age = checks["worker_last_seen_s"]
    gone = age is not None and age > settings.worker_gone_after_s
    checks["worker"] = "never_seen" if age is None else ("gone" if gone else "ok")
    ready = (
        database_up and checks["queue"] == "ok" and checks.get("redis", "ok") == "ok" and not gone
    )
    return jsonify({"status": "ready" if ready else "not_ready", "checks": checks}), (
        200 if ready else 503
    )
