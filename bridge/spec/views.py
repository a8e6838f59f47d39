"""Self-description: `/manifest.json` and `/openapi.json`, generated from the registry."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify

from bridge.registry import ACTIONS, TRIGGERS
from bridge.spec.manifest import build_manifest
from bridge.spec.openapi import build_openapi

bp = Blueprint("meta", __name__)


@cache
def _openapi() -> dict[str, Any]:
    return build_openapi(ACTIONS, TRIGGERS)


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(_openapi())


@bp.get("/manifest.json")
def manifest() -> Response:
    return jsonify(build_manifest(ACTIONS, TRIGGERS))
