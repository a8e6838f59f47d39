"""`flask --app bridge manifest`: write manifest.json from the registry (`make manifest`)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from bridge.registry import ACTIONS, TRIGGERS
from bridge.spec.manifest import MANIFEST_PATH, manifest_text


@click.command("manifest")
@click.option("--check", is_flag=True, help="Fail if manifest.json differs from the registry.")
@with_appcontext
def manifest_command(check: bool) -> None:
    """Write manifest.json from the registry (`make manifest`)."""
    text = manifest_text(current_app, ACTIONS, TRIGGERS)
    if check:
        if not MANIFEST_PATH.exists() or MANIFEST_PATH.read_text() != text:
            raise click.ClickException("manifest.json is stale: run `make manifest`")
        click.echo("manifest.json is up to date")
        return
    MANIFEST_PATH.write_text(text)
    click.echo(f"wrote {MANIFEST_PATH.name}")
