"""Operator commands for connections: `flask --app bridge connections create|list|revoke|...`.

They call the same functions as the HTTP API (`bridge.connections.service`), so both paths keep
the same rules: keys verified upstream before storing, tokens shown once, revocation immediate.
"""

from __future__ import annotations

import json
import sys

import click
from flask.cli import AppGroup
from sqlalchemy.orm import Session, sessionmaker

from bridge.connections import service as connections
from bridge.infra import rekey, storage
from bridge.infra.errors import BridgeError
from bridge.infra.models import Connection
from bridge.upstream.client import Organization
from bridge.web import context

connections_cli = AppGroup("connections", help="Create, list, rotate and revoke connections.")


def _sessions() -> sessionmaker[Session]:
    return context.runtime().sessions


def _read_key(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline()
    return str(click.prompt("ZappWay API key", hide_input=True))


def _echo(data: object) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _verify_or_exit(api_key: str, plan: str) -> Organization:
    try:
        return connections.verify_key(context.runtime(), api_key, plan)
    except BridgeError as exc:
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
            session, context.runtime().box, org, api_key=api_key, label=label, plan=plan
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
        connections.replace_api_key(connection, context.runtime().box, org, new_key)
    click.echo(f"rotated the ZappWay key of {connection_id}")


@connections_cli.command("reencrypt")
def reencrypt_command() -> None:
    """Re-encrypt every stored secret (ZappWay keys, signing secrets, hook and source secrets,
    inbound URL tokens) under the current BRIDGE_SECRET_KEY, after a secret rotation."""
    with storage.session_scope(_sessions()) as session:
        done = rekey.reencrypt_all(session, context.runtime().box)
    for column, count in done.rewritten.items():
        click.echo(f"{column}: {count}")
    click.echo(f"re-encrypted {done.total} secret(s)")
    if done.unreadable:
        rows = ", ".join(done.unreadable)
        raise click.ClickException(
            f"no configured key decrypts {len(done.unreadable)} value(s), left as they were: "
            f"{rows}. Keep the key that wrote them in BRIDGE_OLD_SECRET_KEYS and run this again."
        )
