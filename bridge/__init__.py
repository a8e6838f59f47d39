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
    from bridge import worker
    from bridge.config import Settings
    from bridge.connections import views as api_connections
    from bridge.hooks import views as api_triggers
    from bridge.infra import logs, storage
    from bridge.infra.crypto import SecretBox
    from bridge.infra.outbound import Deliverer
    from bridge.registry import ACTIONS, TRIGGERS
    from bridge.runs import views as api_actions
    from bridge.runs.jobs import DeadlineRunner
    from bridge.runtime import Runtime
    from bridge.spec import views as api_meta
    from bridge.sync import views as api_sources
    from bridge.upstream.client import UpstreamPool
    from bridge.web import cli, errors, health

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
