"""Self-description: `/manifest.json` and `/openapi.json`, built from the registry and the
routes' declarations."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from bridge.registry import ACTIONS, TRIGGERS
from bridge.spec.manifest import build_manifest
from bridge.spec.openapi import build_openapi
from bridge.web.api import Answer, Endpoint, endpoint

bp = Blueprint("meta", __name__)
CACHE = "bridge.spec"


def _built(app: Flask) -> dict[str, Any]:
    """Both documents, built once per app (the routes do not change after start-up)."""
    cached: dict[str, Any] | None = app.extensions.get(CACHE)
    if cached is None:
        cached = {
            "openapi": build_openapi(app),
            "manifest": build_manifest(ACTIONS, TRIGGERS),
        }
        app.extensions[CACHE] = cached
    return cached


@bp.get("/openapi.json")
@endpoint(Endpoint("This document", {200: Answer({"type": "object"})}, secured=False))
def openapi() -> Response:
    return jsonify(_built(current_app)["openapi"])


@bp.get("/manifest.json")
@endpoint(Endpoint(
    "The platform-neutral description integrations are wired from",
    {200: Answer({"type": "object"})}, secured=False,
))  # fmt: skip
def manifest() -> Response:
    return jsonify(_built(current_app)["manifest"])
