"""Operator commands: `flask --app bridge migrate` and `flask --app bridge connections ...`.

They call the same functions as the HTTP API (`bridge.connections`), so both paths keep the
same rules: keys verified upstream before storing, tokens shown once, revocation immediate.
"""

from __future__ import annotations

import json
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.orm import Session, sessionmaker

from bridge import connections, context, storage
from bridge.models import Connection
from bridge.upstream import Organization
from bridge.upstream_errors import UpstreamError

connections_cli = AppGroup("connections", help="Create, list, rotate and revoke connections.")


def _sessions() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["sessions"]
    return factory


def _read_key(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline()
    return str(click.prompt("ZappWay API key", hide_input=True))


def _echo(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _verify_or_exit(api_key: str, plan: str) -> Organization:
    try:
        return connections.verify_key(context.upstream_pool(), context.settings(), api_key, plan)
    except UpstreamError as exc:
        raise click.ClickException(f"ZappWay refused the key: {exc.message}") from exc


@connections_cli.command("create")
@click.option("--label", default=None, help="Name shown in listings.")
@click.option("--plan", default=None, help="free, pro, or requests per minute.")
@click.option("--api-key-stdin", is_flag=True, help="Read the ZappWay key from standard input.")
def create_command(label: str | None, plan: str | None, api_key_stdin: bool) -> None:
    """Verify a ZappWay key and print a new connection token (shown once)."""
    settings = context.settings()
    api_key = connections.normalise_api_key(_read_key(api_key_stdin))
    plan = plan or settings.default_plan
    org = _verify_or_exit(api_key, plan)
    with storage.session_scope(_sessions()) as session:
        issued = connections.create(
            session, context.secret_box(), org, api_key=api_key, label=label, plan=plan
        )
        shown_once = {"token": issued.token, "signing_secret": issued.signing_secret}
        _echo({**connections.describe(issued.connection, settings), **shown_once})


@connections_cli.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked connections.")
def list_command(include_revoked: bool) -> None:
    """List connections (never keys or tokens)."""
    with storage.session_scope(_sessions()) as session:
        rows = connections.list_all(session, include_revoked)
        _echo([connections.describe(row, context.settings()) for row in rows])


def _load(session: Session, connection_id: str) -> Connection:
    connection = connections.find(session, connection_id)
    if connection is None:
        raise click.ClickException(f"no connection {connection_id}")
    return connection


@connections_cli.command("revoke")
@click.argument("connection_id")
def revoke_command(connection_id: str) -> None:
    """Revoke a connection; its token fails from the next request on."""
    with storage.session_scope(_sessions()) as session:
        connections.revoke(_load(session, connection_id))
    click.echo(f"revoked {connection_id}")


@connections_cli.command("rotate-token")
@click.argument("connection_id")
def rotate_token_command(connection_id: str) -> None:
    """Issue a new token for a connection (printed once); the old one stops working."""
    with storage.session_scope(_sessions()) as session:
        token = connections.rotate_token(_load(session, connection_id))
    _echo({"id": connection_id, "token": token})


@connections_cli.command("rotate-key")
@click.argument("connection_id")
@click.option("--api-key-stdin", is_flag=True, help="Read the new ZappWay key from standard input.")
def rotate_key_command(connection_id: str, api_key_stdin: bool) -> None:
    """Verify a new ZappWay key, then swap it in; nothing changes if verification fails."""
    with storage.session_scope(_sessions()) as session:
        connection = _load(session, connection_id)
        new_key = connections.normalise_api_key(_read_key(api_key_stdin))
        org = _verify_or_exit(new_key, connection.plan)
        connections.replace_api_key(connection, context.secret_box(), org, new_key)
    click.echo(f"rotated the ZappWay key of {connection_id}")


@connections_cli.command("reencrypt")
def reencrypt_command() -> None:
    """Re-encrypt stored keys under the current BRIDGE_SECRET_KEY (after a secret rotation)."""
    with storage.session_scope(_sessions()) as session:
        count = connections.reencrypt_all(session, context.secret_box())
    click.echo(f"re-encrypted {count} connection(s)")


@click.command("migrate")
@with_appcontext
def migrate_command() -> None:
    """Apply database migrations (run by `make run` and the Procfile's release line)."""
    storage.migrate(current_app.extensions["engine"])
    click.echo("database is up to date")


@click.command("manifest")
@click.option("--check", is_flag=True, help="Fail if manifest.json differs from the registry.")
def manifest_command(check: bool) -> None:
    """Write manifest.json from the registry (`make manifest`)."""
    from bridge.manifest import MANIFEST_PATH, manifest_text
    from bridge.registry import ACTIONS, TRIGGERS

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
    from bridge.spec import exports

    targets = list(exports.RENDERERS) if target == "all" else [target]
    if check:
        stale = [f"{name}/{path}" for name in targets for path in exports.stale(name)]
        if stale:
            raise click.ClickException(f"stale: {', '.join(stale)}; run `make integrations`")
        click.echo("integrations/ is up to date")
        return
    for name in targets:
        click.echo(f"wrote {len(exports.write(name))} files under integrations/{name}/")


def init_app(app: Flask) -> None:
    app.cli.add_command(connections_cli)
    app.cli.add_command(migrate_command)
    app.cli.add_command(manifest_command)
    app.cli.add_command(export_command)
