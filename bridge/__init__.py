"""ZappWay Bridge: a Flask service between no-code automation tools and the ZappWay API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask

if TYPE_CHECKING:
    import httpx


def create_app(
    config: Mapping[str, Any] | None = None,
    *,
    upstream_transport: httpx.BaseTransport | None = None,
) -> Flask:
    """Build the app. `config` (a dict of Settings fields) replaces the environment entirely."""
    from bridge import (
        api_actions,
        api_connections,
        api_meta,
        api_sources,
        api_triggers,
        cli,
        errors,
        health,
        logs,
        storage,
        worker,
    )  # fmt: skip
    from bridge.config import Settings
    from bridge.crypto import SecretBox
    from bridge.delivery import Deliverer
    from bridge.jobs import DeadlineRunner
    from bridge.registry import ACTIONS, TRIGGERS
    from bridge.runtime import Runtime
    from bridge.upstream import UpstreamPool

    settings = Settings.from_process_env() if config is None else Settings.for_tests(config)
    logs.configure(settings.log_level)
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["settings"] = settings
    app.extensions["secret_box"] = SecretBox((settings.secret_key, *settings.old_secret_keys))
    storage.init_app(app, storage.make_engine(settings.database_url))
    app.extensions["upstream"] = UpstreamPool(settings, upstream_transport)
    runtime = Runtime(
        settings=settings,
        sessions=app.extensions["sessions"],
        box=app.extensions["secret_box"],
        pool=app.extensions["upstream"],
        deliverer=Deliverer(settings.allow_private_targets, settings.hook_timeout_s),
    )
    app.extensions["runtime"] = runtime
    app.extensions["deadline_runner"] = DeadlineRunner(runtime)
    app.extensions["huey"] = worker.init_app(app)
    errors.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(api_connections.bp)
    app.register_blueprint(api_meta.bp)
    app.register_blueprint(api_sources.bp)
    api_actions.register(app, ACTIONS)
    api_triggers.register(app, TRIGGERS)
    cli.init_app(app)
    return app
