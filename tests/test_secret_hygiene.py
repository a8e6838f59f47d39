"""ZappWay keys never appear in the database, the logs or any response after creation."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import ADMIN_TOKEN, bearer, runtime_of


def exercise(client, sim_admin, seeded) -> tuple[list[str], list[str]]:
    """Run the whole lifecycle, including failures; return (keys used, response texts)."""
    texts = []
    created = client.post("/v1/connections", json={"api_key": seeded["key"], "label": "L"})
    token = created.get_json()["token"]
    second_key = sim_admin.create_key(seeded["org"]["id"])
    calls = [
        client.get("/v1/me", headers=bearer(token)),
        client.get("/v1/me?verify=1", headers=bearer(token)),
        client.post("/v1/me/rotate-key", headers=bearer(token), json={"api_key": "bad key"}),
        client.post("/v1/me/rotate-key", headers=bearer(token), json={"api_key": second_key}),
        client.get("/v1/admin/connections", headers=bearer(ADMIN_TOKEN)),
    ]
    sim_admin.revoke_key(second_key)
    calls.append(client.get("/v1/me?verify=1", headers=bearer(token)))
    texts.extend(response.get_data(as_text=True) for response in calls)
    return [seeded["key"], second_key], texts


def test_keys_absent_from_sqlite_files_logs_and_responses(
    client, app, sim_admin, seeded, caplog, capsys, tmp_path
):
    """After a full lifecycle the keys are in no database file, log line or response body."""
    caplog.set_level(logging.DEBUG)
    keys, texts = exercise(client, sim_admin, seeded)
    runtime_of(app).engine.dispose()
    db_bytes = b"".join(p.read_bytes() for p in Path(tmp_path).glob("bridge.sqlite3*"))
    assert db_bytes, "the database file should exist"
    logged = caplog.text + capsys.readouterr().out
    for key in keys:
        assert key.encode() not in db_bytes
        assert key not in logged
        assert all(key not in text for text in texts)


def test_keys_absent_from_postgres_rows(make_app, pg_url, sim_admin, seeded):
    """On PostgreSQL no column of any table holds the key in clear."""
    app = make_app(database_url=pg_url)
    keys, _ = exercise(app.test_client(), sim_admin, seeded)
    with runtime_of(app).engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM connections")).fetchall()
    dump = repr(rows)
    assert "conn_" in dump
    for key in keys:
        assert key not in dump


def test_simulator_canaries_never_reach_responses(client, connection):
    """Billing fields the upstream sends with /me (customerId, subscriptions) are dropped."""
    body = client.get("/v1/me?verify=1", headers=bearer(connection["token"])).get_data(as_text=True)
    assert "CANARY" not in body
