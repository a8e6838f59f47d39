"""`flask --app bridge manifest` and `flask --app bridge export`: write manifest.json and the
platform apps under integrations/ from the registry (`make manifest`, `make integrations`)."""

from __future__ import annotations

import click

from bridge.registry import ACTIONS, TRIGGERS
from bridge.spec import exports
from bridge.spec.manifest import MANIFEST_PATH, manifest_text


@click.command("manifest")
@click.option("--check", is_flag=True, help="Fail if manifest.json differs from the registry.")
def manifest_command(check: bool) -> None:
    """Write manifest.json from the registry (`make manifest`)."""
    text = manifest_text(ACTIONS, TRIGGERS)
    if check:
        if not MANIFEST_PATH.exists() or MANIFEST_PATH.read_text() != text:
            raise click.ClickException("manifest.json is stale: run `make manifest`")
        click.echo("manifest.json is up to date")
        return
    MANIFEST_PATH.write_text(text)
    click.echo(f"wrote {MANIFEST_PATH.name}")


@click.command("export")
@click.argument("target", type=click.Choice(["zapier", "make", "n8n", "all"]))
@click.option("--check", is_flag=True, help="Fail if the committed files differ from an export.")
def export_command(target: str, check: bool) -> None:
    """Write the Zapier, Make or n8n app under integrations/ from the registry."""
    targets = list(exports.RENDERERS) if target == "all" else [target]
    if check:
        stale = [f"{name}/{path}" for name in targets for path in exports.stale(name)]
        if stale:
            raise click.ClickException(f"stale: {', '.join(stale)}; run `make integrations`")
        click.echo("integrations/ is up to date")
        return
    for name in targets:
        click.echo(f"wrote {len(exports.write(name))} files under integrations/{name}/")
