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
    """Build the app: the one place that wires features to the queue, the routes and the CLI.

    `config` (a dict of Settings fields) replaces the environment entirely.
    """
    from huey import Huey

    from bridge.config import Settings
    from bridge.connections import cli as connections_cli
    from bridge.connections import views as connections_views
    from bridge.console import views as console_views
    from bridge.console.activity import ActivityLog
    from bridge.console.session import SessionCodec
    from bridge.console.signin import SignInLimiter
    from bridge.console.tasks import ConsoleTasks
    from bridge.hooks import views as hooks_views
    from bridge.hooks.tasks import HookTasks
    from bridge.infra import logs, queue
    from bridge.registry import ACTIONS, TRIGGERS
    from bridge.runs import views as runs_views
    from bridge.runs.runner import ActionRunner
    from bridge.runs.tasks import RunTasks
    from bridge.runtime import Runtime
    from bridge.spec import cli as spec_cli
    from bridge.spec import views as spec_views
    from bridge.sync import views as sync_views
    from bridge.sync.tasks import SyncTasks
    from bridge.web import cli, context, errors, health, metrics
    from bridge.web.body_timeout import BodyTimeout
    from bridge.web.chunked_body import ChunkedBody

    settings = Settings.from_process_env() if config is None else Settings.for_tests(config)
    logs.configure(settings.log_level)
    runtime = Runtime.build(settings, upstream_transport)
    huey = queue.make_huey(settings)
    runner = ActionRunner(runtime)
    activity_log = ActivityLog(runtime.engine, settings.activity_flush_s, settings.activity_buffer)

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes  # also makes a stalled read a 400
    # A chunked body is read to its end (or past the limit) inside the stall timeout.
    app.wsgi_app = BodyTimeout(  # type: ignore[method-assign]
        ChunkedBody(app.wsgi_app, settings.max_body_bytes), settings.body_timeout_s
    )
    context.trust_proxy_scheme(app, settings.proxy_hops)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    context.register(app, {
        Runtime: runtime,
        Huey: huey,
        queue.WorkerHeartbeat: queue.WorkerHeartbeat(
            huey, runtime.sessions, settings.housekeeping_minutes
        ),
        ActionRunner: runner,
        RunTasks: RunTasks(huey, runner, ACTIONS),
        HookTasks: HookTasks(huey, runtime),
        SyncTasks: SyncTasks(huey, runtime),
        ConsoleTasks: ConsoleTasks(huey, runtime),
        ActivityLog: activity_log,
        SessionCodec: SessionCodec((settings.secret_key, *settings.old_secret_keys)),
        SignInLimiter: SignInLimiter(settings),
    })  # fmt: skip
    errors.init_app(app)
    metrics.init_app(app)
    for blueprint in (
        health.bp, connections_views.bp, spec_views.bp, sync_views.bp, console_views.bp,
    ):  # fmt: skip
        app.register_blueprint(blueprint)
    app.after_request(console_views.activity_hook(activity_log, settings.proxy_hops))
    runs_views.register(app, ACTIONS)
    hooks_views.register(app, TRIGGERS)
    for command in (
        cli.migrate_command,
        connections_cli.connections_cli,
        spec_cli.manifest_command,
        spec_cli.export_command,
    ):
        app.cli.add_command(command)
    return app
