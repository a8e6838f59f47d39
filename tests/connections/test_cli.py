"""`flask --app bridge connections ...` runs the same lifecycle as the HTTP API."""

from __future__ import annotations

import json

from sqlalchemy import select

from bridge.infra.models import Connection, Subscription
from tests.conftest import TEST_SECRET, bearer, random_key, runtime_of
from tests.sources_helpers import connect, signed_for


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


def test_reencrypt_moves_every_stored_secret_to_the_new_master_key(make_app, seeded):
    """After BRIDGE_SECRET_KEY changes (the old one kept in BRIDGE_OLD_SECRET_KEYS), `reencrypt`
    rewrites every secret, not only the ZappWay keys: once the old key is dropped, the
    connection's signing secret, a hook's secret and a CMS source's secrets and inbound URL
    still decrypt, and the source still verifies its webhooks. (Before, only the keys were
    rewritten; the source's pages and webhooks then answered 500.)"""
    bridge = connect(make_app, seeded, allow_private_targets=True)
    source = bridge.source("woocommerce")
    hook = bridge.client.post(
        "/v1/hooks", headers=bridge.headers(),
        json={"target_url": "http://127.0.0.1:9/hook", "agent_id": seeded["agents"][0]["id"]},
    )  # fmt: skip
    assert hook.status_code == 201, hook.get_json()
    database = runtime_of(bridge.app).settings.database_url
    new_secret = "new-" + TEST_SECRET

    rotated = make_app(secret_key=new_secret, old_secret_keys=(TEST_SECRET,),
                       database_url=database)  # fmt: skip
    result = run(rotated, "connections", "reencrypt")
    assert result.exit_code == 0, result.output
    for column in ("connections.api_key_ciphertext: 1", "connections.signing_secret_ciphertext: 1",
                   "subscriptions.secret_ciphertext: 1", "sources.path_token_ciphertext: 1",
                   "sources.secrets_ciphertext: 1"):  # fmt: skip
        assert column in result.output
    assert "re-encrypted 5 secret(s)" in result.output

    only_new = make_app(secret_key=new_secret, database_url=database)
    client = only_new.test_client()
    assert client.get("/v1/me", headers=bridge.headers()).status_code == 200
    listed = client.get("/v1/sources", headers=bridge.headers())
    assert listed.status_code == 200, listed.get_json()
    assert listed.get_json()[0]["inbound_path"] == source["inbound_path"]
    request = signed_for(source, "woocommerce")
    answer = client.post(source["inbound_path"], data=request.body, headers=request.headers)
    assert answer.status_code == 202, answer.get_json()
    box = runtime_of(only_new).box
    with runtime_of(only_new).sessions() as session:
        subscription = session.scalars(select(Subscription)).one()
        assert box.decrypt(subscription.secret_ciphertext) == hook.get_json()["secret"]
        row = session.scalars(select(Connection)).one()
        assert box.decrypt(row.api_key_ciphertext) == seeded["key"]


def test_reencrypt_names_what_no_key_can_read(make_app, seeded):
    """A value no configured key decrypts is named, left as it was, and the command fails."""
    bridge = connect(make_app, seeded)
    database = runtime_of(bridge.app).settings.database_url
    lost = make_app(secret_key="new-" + TEST_SECRET, database_url=database)
    result = run(lost, "connections", "reencrypt")
    assert result.exit_code != 0
    assert f"connections.api_key_ciphertext {bridge.connection_id}" in result.output
    assert "BRIDGE_OLD_SECRET_KEYS" in result.output
    assert seeded["key"] not in result.output


def test_migrate_command_is_idempotent(app):
    """`flask migrate` can run on every start."""
    assert "up to date" in run(app, "migrate").output
    assert "up to date" in run(app, "migrate").output
