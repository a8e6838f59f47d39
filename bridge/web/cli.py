"""The root operator command: `flask --app bridge migrate` (features add their own groups)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from bridge.infra import storage
from bridge.web import context


@click.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Apply database migrations (run by `make run` and the Procfile's release line)."""
    storage.migrate(context.runtime().engine)
    click.echo("database is up to date")
