"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: database, queue)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import select

from bridge.infra import storage
from bridge.infra.models import Heartbeat
from bridge.web import context

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Check every dependency; 503 names the one that is down (no connection strings shown)."""
    checks: dict[str, Any] = {}
    try:
        storage.ping(current_app.extensions["engine"])
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unreachable"
    try:
        context.huey().pending_count()
        checks["queue"] = "ok"
    except Exception:
        checks["queue"] = "unreachable"
    checks["worker_last_seen_s"] = _worker_age() if checks["database"] == "ok" else None
    ready = checks["database"] == "ok" and checks["queue"] == "ok"
    return jsonify({"status": "ready" if ready else "not_ready", "checks": checks}), (
        200 if ready else 503
    )


def _worker_age() -> float | None:
    session = storage.get_session()
    latest = session.scalar(select(Heartbeat.beat_at).order_by(Heartbeat.beat_at.desc()).limit(1))
    if latest is None:
        return None
    if latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)
    return round((datetime.now(UTC) - latest).total_seconds(), 1)
