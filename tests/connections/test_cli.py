"""`flask --app bridge connections ...` runs the same lifecycle as the HTTP API."""

from __future__ import annotations

import json

from bridge import create_app
from bridge.infra import storage
from tests.conftest import TEST_SECRET, bearer, random_key, runtime_of


def run(app, *args, stdin=None):
    result = app.test_cli_runner().invoke(args=list(args), input=stdin)
    return result


def test_create_list_rotate_revoke(app, seeded):
    """The CLI creates a connection (token printed once), lists, rotates and revokes it."""
    created = run(
        app,
        "connections",
        "create",
        "--label",
        "CLI",
        "--api-key-stdin",
        stdin=seeded["key"] + "\n",
    )
    assert created.exit_code == 0, created.output
    body = json.loads(created.output)
    assert seeded["key"] not in created.output
    client = app.test_client()
    assert client.get("/v1/me", headers=bearer(body["token"])).status_code == 200

    listed = run(app, "connections", "list")
    assert json.loads(listed.output)[0]["id"] == body["id"]
    assert body["token"] not in listed.output

    rotated = run(app, "connections", "rotate-token", body["id"])
    new_token = json.loads(rotated.output)["token"]
    assert client.get("/v1/me", headers=bearer(body["token"])).status_code == 401
    assert client.get("/v1/me", headers=bearer(new_token)).status_code == 200

    assert run(app, "connections", "revoke", body["id"]).exit_code == 0
    assert client.get("/v1/me", headers=bearer(new_token)).status_code == 401


def test_create_with_rejected_key_fails_cleanly(app):
    """A key ZappWay rejects makes the command fail with a message and store nothing."""
    result = run(app, "connections", "create", "--api-key-stdin", stdin=random_key() + "\n")
    assert result.exit_code != 0
    assert "ZappWay refused the key" in result.output
    assert json.loads(run(app, "connections", "list").output) == []


def test_rotate_key_verifies_first(app, seeded, sim_admin):
    """rotate-key refuses a bad key and accepts a verified one."""
    body = json.loads(
        run(app, "connections", "create", "--api-key-stdin", stdin=seeded["key"]).output
    )
    bad = run(app, "connections", "rotate-key", body["id"], "--api-key-stdin", stdin=random_key())
    assert bad.exit_code != 0
    good_key = sim_admin.create_key(seeded["org"]["id"])
    good = run(app, "connections", "rotate-key", body["id"], "--api-key-stdin", stdin=good_key)
    assert good.exit_code == 0, good.output
    listed = json.loads(run(app, "connections", "list").output)
    assert listed[0]["api_key_last4"] == good_key[-4:]


def test_reencrypt_after_master_secret_rotation(base_settings, sim_transport, seeded):
    """After BRIDGE_SECRET_KEY changes (old one kept as old), reencrypt rewrites every key."""
    app = create_app(base_settings, upstream_transport=sim_transport)
    storage.migrate(runtime_of(app).engine)
    run(app, "connections", "create", "--api-key-stdin", stdin=seeded["key"])
    new_secret = "new-" + TEST_SECRET
    rotated = create_app(
        {**base_settings, "secret_key": new_secret, "old_secret_keys": (TEST_SECRET,)},
        upstream_transport=sim_transport,
    )
    assert "re-encrypted 1" in run(rotated, "connections", "reencrypt").output
    only_new = create_app(
        {**base_settings, "secret_key": new_secret}, upstream_transport=sim_transport
    )
    with runtime_of(only_new).sessions() as session:
        from bridge.infra.models import Connection

        row = session.query(Connection).one()
        assert runtime_of(only_new).box.decrypt(row.api_key_ciphertext) == seeded["key"]


def test_migrate_command_is_idempotent(app):
    """`flask migrate` can run on every start."""
    assert "up to date" in run(app, "migrate").output
    assert "up to date" in run(app, "migrate").output
