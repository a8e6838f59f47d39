"""Each connection's API requests: recorded by one after-request hook into a bounded buffer,
written in batches, read back as usage and flags, purged after the retention."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import func, select

from bridge.connections import service as connections
from bridge.console import activity
from bridge.console.activity import ActivityLog, Record
from bridge.console.chart import draw
from bridge.infra import storage
from bridge.infra.models import ApiRequest
from bridge.web.context import service_of
from tests.conftest import ADMIN_TOKEN, bearer, housekeeping, runtime_of
from tests.sources_helpers import signed_for

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def rows(app) -> list[ApiRequest]:
    with runtime_of(app).sessions() as session:
        return list(session.scalars(select(ApiRequest).order_by(ApiRequest.id)))


def flush(app) -> int:
    return service_of(app, ActivityLog).flush()


def test_an_api_request_is_recorded_for_its_connection(app, client, connection):
    """A request authenticated with a token is written, at the next flush, with its route,
    status and address, never its query string or token."""
    client.get("/v1/me?verify=0", headers=bearer(connection["token"]))
    client.get("/v1/hooks/hook_nope", headers=bearer(connection["token"]))
    assert flush(app) == 2
    found = rows(app)
    assert [(r.method, r.route, r.path, r.status) for r in found] == [
        ("GET", "/v1/me", "/v1/me", 200),
        ("GET", "/v1/hooks/<subscription_id>", "/v1/hooks/hook_nope", 404),
    ]
    assert {r.connection_id for r in found} == {connection["id"]}
    assert {r.address for r in found} == {"127.0.0.1"}


def test_requests_without_a_connection_are_not_recorded(app, client, connection):
    """Unauthenticated, wrongly authenticated and admin requests belong to no connection."""
    client.get("/healthz")
    client.get("/v1/me", headers=bearer("zwb_" + "A" * 43))
    client.get("/v1/admin/connections", headers=bearer(ADMIN_TOKEN))
    assert flush(app) == 0


def test_an_inbound_webhook_is_recorded_with_its_token_redacted(app, client, connection, seeded):
    """A CMS webhook counts for its source's connection; its URL's token is never stored."""
    created = client.post("/v1/sources", headers=bearer(connection["token"]), json={
        "provider": "wordpress", "datastore_id": seeded["datastores"][0]["id"],
        "secret": "wp-trigger-secret-1",
    }).get_json()  # fmt: skip
    request = signed_for(created, "wordpress")
    answer = client.post(created["inbound_path"], data=request.body, headers=request.headers)
    assert answer.status_code == 202
    flush(app)
    inbound = [r for r in rows(app) if r.route == "/in/<token>"]
    assert [(r.path, r.status, r.connection_id) for r in inbound] == [
        ("/in/<redacted>", 202, connection["id"])
    ]
    runtime_of(app).engine.dispose()
    stored = b"".join(p.read_bytes() for p in Path(runtime_of(app).settings.var_dir).parent
                      .glob("bridge.sqlite3*"))  # fmt: skip
    token = created["inbound_path"].rsplit("/", 1)[-1]
    assert stored and token.encode() not in stored
    assert connection["token"].encode() not in stored


def test_recording_is_an_append_and_writing_happens_in_batches(app, client, connection):
    """Serving requests writes nothing until the batch is flushed, then all of it at once."""
    log = service_of(app, ActivityLog)
    for _ in range(5):
        client.get("/v1/me", headers=bearer(connection["token"]))
    assert rows(app) == []
    assert log.flush() == 5
    assert len(rows(app)) == 5


def test_the_writer_thread_flushes_on_its_own(make_app):
    """Without an explicit flush, the background writer stores records within its interval."""
    app = make_app(activity_flush_s=0.05)
    log = service_of(app, ActivityLog)
    log.record(Record("conn_x", NOW, "GET", "/v1/me", "/v1/me", 200, "127.0.0.1"))
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while not rows(app):
        assert datetime.now(UTC) < deadline, "the writer never flushed"
        time.sleep(0.02)
    assert rows(app)[0].connection_id == "conn_x"


def test_the_buffer_is_bounded_and_counts_what_it_drops(tmp_path):
    """A full buffer drops new records (counted) instead of growing without bound."""
    engine = storage.make_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    storage.migrate(engine)
    log = ActivityLog(engine, flush_s=3600, capacity=3)
    for n in range(5):
        log.record(Record("conn_x", NOW, "GET", "/v1/me", f"/v1/me/{n}", 200, "127.0.0.1"))
    assert log.dropped == 2
    assert log.flush() == 3
    log.close()
    engine.dispose()


def test_a_failed_write_keeps_the_records_for_the_next_batch(tmp_path):
    """When the database refuses a batch, its records wait in the buffer and are written later."""
    engine = storage.make_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    log = ActivityLog(engine, flush_s=3600, capacity=100)
    log.record(Record("conn_x", NOW, "GET", "/v1/me", "/v1/me", 200, "127.0.0.1"))
    assert log.flush() == 0  # no table yet: the write fails
    storage.migrate(engine)
    assert log.flush() == 1
    log.close()
    engine.dispose()


def test_close_writes_what_is_left(tmp_path):
    """A graceful stop flushes the buffer: nothing recorded before it is lost."""
    engine = storage.make_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    storage.migrate(engine)
    log = ActivityLog(engine, flush_s=3600, capacity=100)
    log.record(Record("conn_x", NOW, "GET", "/v1/me", "/v1/me", 200, "127.0.0.1"))
    log.close()
    with engine.connect() as db:
        assert db.scalar(select(func.count()).select_from(ApiRequest)) == 1
    engine.dispose()


def test_last_used_moves_forward_without_touching_updated_at(app, client, connection):
    """A flush sets the connection's last use to its newest request; `updated_at` stays."""
    with runtime_of(app).sessions() as session:
        before = connections.find(session, connection["id"])
        assert before is not None and before.last_used_at is None
        updated_at = before.updated_at
    client.get("/v1/me", headers=bearer(connection["token"]))
    flush(app)
    with runtime_of(app).sessions() as session:
        after = connections.find(session, connection["id"])
        assert after is not None and after.last_used_at is not None
        assert after.updated_at == updated_at


def test_the_address_behind_trusted_proxies_is_the_one_they_saw(make_app, seeded):
    """With BRIDGE_PROXY_HOPS=1 the address is the last X-Forwarded-For entry, not the peer and
    not what the client itself wrote further left."""
    app = make_app(proxy_hops=1)
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    forwarded = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7"}
    client.get("/v1/me", headers={**bearer(token), **forwarded})
    flush(app)
    assert [r.address for r in rows(app)] == ["203.0.113.7"]


def test_housekeeping_purges_records_past_the_retention(app):
    """Records older than BRIDGE_ACTIVITY_RETENTION_DAYS are deleted; recent ones stay."""
    log = service_of(app, ActivityLog)
    old = datetime.now(UTC) - timedelta(days=8)
    for at in (old, datetime.now(UTC)):
        log.record(Record("conn_x", at, "GET", "/v1/me", "/v1/me", 200, "127.0.0.1"))
    log.flush()
    housekeeping(app)
    assert [r.at > old + timedelta(days=1) for r in rows(app)] == [True]


def record_at(log: ActivityLog, when: datetime, status: int = 200, address: str = "10.0.0.1",
              method: str = "POST", route: str = "/v1/actions/query_agent") -> None:  # fmt: skip
    log.record(Record("conn_a", when, method, route, route, status, address))


def test_usage_counts_requests_and_429s_per_minute_against_the_limit(app):
    """The chart's minutes hold each minute's requests and 429s; the summary names the peak."""
    log = service_of(app, ActivityLog)
    for second in range(12):
        record_at(
            log, NOW - timedelta(minutes=3, seconds=-second), status=429 if second < 2 else 200
        )
    record_at(log, NOW - timedelta(minutes=10))
    log.flush()
    with runtime_of(app).sessions() as session:
        usage = activity.usage(session, "conn_a", 60, 3, NOW)
    assert len(usage.minutes) == 180
    busiest = usage.peak
    assert busiest is not None and (busiest.requests, busiest.throttled) == (12, 2)
    assert (usage.total, usage.throttled) == (13, 2)
    chart = draw(usage)
    assert len(chart.bars) == 2
    assert "busiest minute 12" in chart.summary and "2 answered 429" in chart.summary


def test_a_minute_far_above_the_usual_is_flagged_as_unusual_volume(app):
    """A minute several times the connection's typical minute (and past a floor) is unusual."""
    log = service_of(app, ActivityLog)
    for minutes_ago in range(20, 200, 10):
        record_at(log, NOW - timedelta(minutes=minutes_ago))
        record_at(log, NOW - timedelta(minutes=minutes_ago, seconds=-5))
    for second in range(40):
        record_at(log, NOW - timedelta(minutes=2, seconds=-second))
    log.flush()
    with runtime_of(app).sessions() as session:
        usage = activity.usage(session, "conn_a", 60, 3, NOW)
    assert [m.requests for m in usage.unusual] == [40]
    assert usage.typical == 2


def test_new_addresses_and_errors_on_unused_operations_are_flagged(app):
    """An address first seen today (after the first minutes) is new; an error on an operation
    that never succeeded for the connection is unusual; a 429 is not."""
    log = service_of(app, ActivityLog)
    record_at(log, NOW - timedelta(days=2))
    record_at(log, NOW - timedelta(hours=1), address="10.0.0.1")
    record_at(log, NOW - timedelta(minutes=5), address="198.51.100.9")
    record_at(log, NOW - timedelta(minutes=4), status=404, method="DELETE",
              route="/v1/hooks/<subscription_id>")  # fmt: skip
    record_at(log, NOW - timedelta(minutes=3), status=429)
    record_at(log, NOW - timedelta(minutes=2), status=422)
    log.flush()
    with runtime_of(app).sessions() as session:
        seen = activity.recent(session, "conn_a", NOW)
    by_status = {s.status: s for s in seen}
    assert {s.address for s in seen if s.new_address} == {"198.51.100.9"}
    assert by_status[404].unusual_error
    assert not by_status[429].unusual_error
    assert not by_status[422].unusual_error  # query_agent has succeeded before


def test_the_connection_page_shows_recent_requests_and_flags(app, client, connection):
    """The connection page lists a request just made and flags an error on an unused route."""
    client.get("/v1/me", headers=bearer(connection["token"]))
    client.delete(f"/v1/hooks/hook_{secrets.token_hex(4)}", headers=bearer(connection["token"]))
    flush(app)
    page_client = app.test_client()
    from tests.console.test_console_pages import sign_in

    sign_in(page_client, ADMIN_TOKEN)
    page = page_client.get(f"/console/connections/{connection['id']}").get_data(as_text=True)
    assert "GET /v1/me" in page
    assert "does not normally use" in page
    assert "<svg" in page and 'role="img"' in page


def test_sqlite_and_postgres_group_minutes_alike(make_app, pg_url):
    """The per-minute grouping and the FILTER count work on PostgreSQL too."""
    app = make_app(database_url=pg_url)
    log = service_of(app, ActivityLog)
    record_at(log, NOW - timedelta(minutes=1), status=429)
    record_at(log, NOW - timedelta(minutes=1, seconds=-1))
    log.flush()
    with runtime_of(app).sessions() as session:
        usage = activity.usage(session, "conn_a", 60, 1, NOW)
        seen = activity.recent(session, "conn_a", NOW)
    assert (usage.total, usage.throttled) == (2, 1)
    assert len(seen) == 2
    with runtime_of(app).engine.connect() as db:
        assert db.execute(sa.text("SELECT count(*) FROM api_requests")).scalar() == 2
