"""ZappWay simulator: a small Flask app that fakes the upstream ZappWay REST API.

It serves the documented profile (``/api/v1``, ``{data, meta}``, 401) or the legacy one
(the Chaindesk ancestor's quirks), with switchable faults and a ``/__admin`` control API.
See ``/work/shared/zappway/contract.md`` section C for what it must do.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from . import (
    admin,
    pipeline,
    routes_agents,
    routes_conversations,
    routes_datasources,
    routes_datastores,
)
from .state import EXTENSION, Store

__all__ = ["create_app"]


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build a simulator with its own state.

    Config keys (all optional): ``profile`` ("documented" | "legacy"), ``seed`` (int, for
    ids and fault probabilities), ``clock`` (an object with ``now()``; wrapped so the
    admin API can still move it).
    """
    config = dict(config or {})
    app = Flask(__name__)
    app.extensions[EXTENSION] = Store(
        profile=config.get("profile", "documented"),
        seed=int(config.get("seed", 0)),
        clock=config.get("clock"),
    )
    pipeline.init_app(app)
    app.register_blueprint(admin.bp)
    for module in (routes_agents, routes_datastores, routes_datasources, routes_conversations):
        module.register(app)
    return app
