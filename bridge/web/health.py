"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: database, queue)."""

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
    bridge's tables, `not_migrated` (no connection strings shown)."""
    checks: dict[str, Any] = {}
    engine = runtime().engine
    try:
        storage.ping(engine)
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unreachable"
    try:
        service(Huey).pending_count()
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
    ready = database_up and checks["queue"] == "ok"
    return jsonify({"status": "ready" if ready else "not_ready", "checks": checks}), (
        200 if ready else 503
    )
