"""The console in-process (Flask's test client, the in-process simulator): sessions, CSRF, the
sign-in limit, what a connection's session may see, secrets shown once, key age advice, and how
HTML pages are declared."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.connections import service as connections
from bridge.console.session import COOKIE
from bridge.console.signin import PER_ADDRESS
from bridge.spec.openapi import build_openapi
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.setup import SETUPS
from bridge.web.api import endpoint_of
from tests.conftest import ADMIN_TOKEN, bearer, runtime_of

CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(client, path: str = "/console/sign-in") -> str:
    """The CSRF token the page at `path` puts in its forms (all forms carry the same one)."""
    found = set(CSRF.findall(client.get(path).get_data(as_text=True)))
    assert len(found) == 1 and "" not in found, found
    return found.pop()


def sign_in(client, token: str):
    return client.post("/console/sign-in", data={"token": token, "csrf_token": csrf_of(client)})


def test_console_pages_are_declared_as_html_and_left_out_of_openapi(app):
    """Every /console route declares itself as an HTML page; /openapi.json lists none of them."""
    rules = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/console")]
    assert len(rules) >= 20
    for rule in rules:
        declared = endpoint_of(app.view_functions[rule.endpoint])
        assert declared is not None and declared.html, rule.rule
    assert not [path for path in build_openapi(app)["paths"] if path.startswith("/console")]


def test_session_cookie_is_secure_httponly_and_lax_in_production(make_app):
    """Outside development and test the session cookie is Secure, HttpOnly and SameSite=Lax."""
    # Production refuses the test suite's published secret: a random one, as a deploy has.
    client = make_app(env="production", secret_key=secrets.token_urlsafe(48)).test_client()
    cookie = client.get("/console/sign-in").headers["Set-Cookie"]
    assert COOKIE in cookie
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/console" in cookie


def test_session_cookie_is_not_secure_in_test(client):
    """In development and test (plain HTTP on purpose) the cookie still is HttpOnly and Lax."""
    cookie = client.get("/console/sign-in").headers["Set-Cookie"]
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_pages_are_not_cached_and_run_only_their_own_scripts(client):
    """Console answers are no-store, framed by a CSP that allows only /console/static."""
    answer = client.get("/console/sign-in")
    assert answer.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]


def test_a_post_without_the_csrf_token_is_refused(client):
    """A sign-in posted without the session's CSRF token is a 400 and opens no session."""
    client.get("/console/sign-in")
    refused = client.post("/console/sign-in", data={"token": ADMIN_TOKEN})
    assert refused.status_code == 400
    assert "csrf_failed" in refused.get_data(as_text=True)
    assert client.get("/console/connections").status_code == 302


def test_a_post_with_another_sessions_csrf_token_is_refused(app):
    """A CSRF token from another browser's session does not pass."""
    mine, theirs = app.test_client(), app.test_client()
    assert sign_in(mine, ADMIN_TOKEN).status_code == 302
    stolen = csrf_of(theirs)
    answer = mine.post("/console/connections", data={"api_key": "x", "csrf_token": stolen})
    assert answer.status_code == 400


def test_the_admin_token_signs_in_and_sign_out_ends_the_session(client):
    """The admin token opens a session showing the connections; signing out ends it."""
    assert sign_in(client, ADMIN_TOKEN).headers["Location"] == "/console"
    assert client.get("/console/connections").status_code == 200
    token = csrf_of(client, "/console/connections")
    assert client.post("/console/sign-out", data={"csrf_token": token}).status_code == 302
    assert client.get("/console/connections").headers["Location"].startswith("/console/sign-in")


def test_a_wrong_token_is_refused_on_the_page(client):
    """A token that is neither the admin's nor a connection's is refused with the reason."""
    refused = sign_in(client, "zwb_" + "A" * 43)
    assert refused.status_code == 401
    assert "Unknown connection token" in refused.get_data(as_text=True)


def test_sign_in_attempts_are_limited_per_address(client):
    """After PER_ADDRESS attempts in a minute from one address the next is a 429."""
    for attempt in range(PER_ADDRESS):
        wrong = f"wrong-{attempt}-" + "x" * 20
        assert sign_in(client, wrong).status_code == 401
    limited = sign_in(client, ADMIN_TOKEN)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1


def test_sign_in_attempts_are_limited_per_token_prefix(app):
    """Guesses naming one token prefix are limited even when each comes from a new address."""
    client = app.test_client()
    prefix = "zwb_SAMEPREF"
    for attempt in range(PER_ADDRESS):
        environ = {"REMOTE_ADDR": f"10.1.{attempt}.1"}
        client.environ_base.update(environ)
        assert sign_in(client, prefix + f"{attempt:043d}"[:39]).status_code == 401
    client.environ_base.update({"REMOTE_ADDR": "10.9.9.9"})
    assert sign_in(client, prefix + "0" * 39).status_code == 429


def test_a_connection_token_sees_only_its_own_connection(client, seeded):
    """A connection's session lists that connection alone; another's pages answer 404."""
    mine = client.post("/v1/connections", json={"api_key": seeded["key"], "label": "Mine"})
    theirs = client.post("/v1/connections", json={"api_key": seeded["key"], "label": "Theirs"})
    assert sign_in(client, mine.get_json()["token"]).status_code == 302
    listed = client.get("/console/connections").get_data(as_text=True)
    assert "Mine" in listed and "Theirs" not in listed
    other = theirs.get_json()["id"]
    for path in ("", "/sources", "/hooks", "/revoke"):
        assert client.get(f"/console/connections/{other}{path}").status_code == 404


def test_a_rotated_token_ends_the_console_sessions_it_opened(client, connection):
    """Rotating the token through the API ends every console session opened with the old one."""
    assert sign_in(client, connection["token"]).status_code == 302
    assert client.get(f"/console/connections/{connection['id']}").status_code == 200
    client.post("/v1/me/rotate-token", headers=bearer(connection["token"]))
    ended = client.get(f"/console/connections/{connection['id']}")
    assert ended.status_code == 302 and "ended=1" in ended.headers["Location"]


def test_creating_a_connection_shows_its_secrets_once(client, seeded):
    """The token and signing secret are on the page that created them and on no later page."""
    sign_in(client, ADMIN_TOKEN)
    created = client.post("/console/connections", data={
        "api_key": seeded["key"], "label": "Zaps", "plan": "pro",
        "csrf_token": csrf_of(client, "/console/connections"),
    }).get_data(as_text=True)  # fmt: skip
    token = re.search(r'id="token" type="text" readonly value="(zwb_[^"]+)"', created)
    secret = re.search(r'id="signing_secret" type="text" readonly value="(whsec_[^"]+)"', created)
    assert token and secret
    assert f"Authorization: Bearer {token.group(1)}" in created  # the platform snippets
    assert client.get("/v1/me", headers=bearer(token.group(1))).get_json()["plan"] == "pro"
    cid = re.search(r"/console/connections/(conn_\w+)", created).group(1)
    for path in (
        "/console/connections",
        f"/console/connections/{cid}",
        f"/console/connections/{cid}/sources",
        f"/console/connections/{cid}/hooks",
    ):
        page = client.get(path).get_data(as_text=True)
        assert token.group(1) not in page and secret.group(1) not in page


def test_a_key_zappway_refuses_is_not_stored(client, app):
    """A key ZappWay rejects shows ZappWay's refusal and creates no connection."""
    sign_in(client, ADMIN_TOKEN)
    refused = client.post("/console/connections", data={
        "api_key": "zw_live_not_a_real_key", "plan": "free",
        "csrf_token": csrf_of(client, "/console/connections"),
    })  # fmt: skip
    assert refused.status_code == 422
    assert "ZappWay rejected this API key" in refused.get_data(as_text=True)
    with runtime_of(app).sessions() as session:
        assert connections.list_all(session) == []


def test_a_key_past_90_days_shows_the_rotation_advice_and_form(client, app, connection):
    """A key older than 90 days is flagged in the list and on its page, beside the rotate form."""
    with runtime_of(app).sessions() as session:
        row = connections.find(session, connection["id"])
        assert row is not None
        row.api_key_set_at = datetime.now(UTC) - timedelta(days=120)
        session.commit()
    sign_in(client, ADMIN_TOKEN)
    assert "key 120 days old: rotate" in client.get("/console/connections").get_data(as_text=True)
    page = client.get(f"/console/connections/{connection['id']}").get_data(as_text=True)
    assert "This key is 120 days old" in page
    assert f'action="/console/connections/{connection["id"]}/rotate-key"' in page


def test_rotating_the_key_in_the_console_resets_its_age(client, app, connection, sim_admin,
                                                       seeded):  # fmt: skip
    """A new key (verified with ZappWay first) replaces the old one and its age starts again."""
    new_key = sim_admin.create_key(seeded["org"]["id"])
    sign_in(client, ADMIN_TOKEN)
    path = f"/console/connections/{connection['id']}"
    form = {"api_key": new_key, "csrf_token": csrf_of(client, path)}
    rotated = client.post(f"{path}/rotate-key", data=form)
    assert rotated.status_code == 302 and "notice=key_replaced" in rotated.headers["Location"]
    with runtime_of(app).sessions() as session:
        row = connections.find(session, connection["id"])
        assert row is not None and row.api_key_last4 == new_key[-4:]
        assert row.api_key_set_at is not None
        assert datetime.now(UTC) - row.api_key_set_at < timedelta(minutes=1)


def test_a_source_made_in_the_console_shows_its_secret_once_with_its_steps(client, connection,
                                                                          seeded):  # fmt: skip
    """A new source's page has its inbound URL, its secret and the provider's steps; the
    source's own page has the URL again, never the secret."""
    sign_in(client, connection["token"])
    base = f"/console/connections/{connection['id']}/sources"
    form = client.get(f"{base}/new?provider=ghost").get_data(as_text=True)
    assert seeded["datastores"][0]["id"] in form  # the datastores ZappWay lists, as a dropdown
    created = client.post(base, data={
        "provider": "ghost", "datastore_id": seeded["datastores"][0]["id"],
        "csrf_token": csrf_of(client, base),
    }).get_data(as_text=True)  # fmt: skip
    secret = re.search(r'id="secret" type="text" readonly value="([^"]+)"', created).group(1)
    assert "Add custom integration" in created  # Ghost's steps, from SETUPS
    sid = re.search(r"/sources/(src_\w+)", created).group(1)
    page = client.get(f"{base}/{sid}").get_data(as_text=True)
    assert "/in/" in page and secret not in page


def test_a_provider_whose_cms_makes_the_secret_needs_it_pasted(client, connection, seeded):
    """Stripe signs with its own endpoint secret: a Stripe source without it is refused."""
    sign_in(client, connection["token"])
    base = f"/console/connections/{connection['id']}/sources"
    refused = client.post(base, data={
        "provider": "stripe", "datastore_id": seeded["datastores"][0]["id"],
        "csrf_token": csrf_of(client, base),
    })  # fmt: skip
    assert refused.status_code == 422
    assert "makes the signing secret" in refused.get_data(as_text=True)


def test_a_console_source_with_a_loopback_cms_base_url_is_refused(client, connection, seeded):
    """The console applies the API's SSRF rule to `credentials.base_url`: 422, naming the
    setting that would allow it, and no source is made."""
    sign_in(client, connection["token"])
    base = f"/console/connections/{connection['id']}/sources"
    refused = client.post(base, data={
        "provider": "directus", "datastore_id": seeded["datastores"][0]["id"],
        "secret": "directus-static-token-1", "credential_token": "t",
        "credential_base_url": "http://127.0.0.1:8055", "csrf_token": csrf_of(client, base),
    })  # fmt: skip
    assert refused.status_code == 422
    assert "BRIDGE_ALLOW_PRIVATE_TARGETS" in refused.get_data(as_text=True)
    assert client.get("/v1/sources", headers=bearer(connection["token"])).get_json() == []


def test_every_provider_has_its_setup_steps():
    """The console's provider steps cover exactly the providers the bridge verifies."""
    assert set(SETUPS) == set(PROVIDERS)
    for key, setup in SETUPS.items():
        assert setup.where and setup.events and setup.field_map and setup.deletes, key
        assert not setup.cms_made_key or setup.cms_key_help, key


def test_the_sign_in_page_tells_a_fresh_deploy_where_the_admin_token_is(client):
    """The first page says where app.json put the admin token and how to read it."""
    page = client.get("/console").headers["Location"]
    text = client.get(page).get_data(as_text=True)
    assert "heroku config:get BRIDGE_ADMIN_TOKEN" in text
    assert "create a connection" in text


def test_without_an_admin_token_the_page_says_how_to_set_one(make_app):
    """When BRIDGE_ADMIN_TOKEN is empty the sign-in page says so and how to set it."""
    text = make_app(admin_token="").test_client().get("/console/sign-in").get_data(as_text=True)
    assert "has no admin token yet" in text


def test_static_files_are_only_the_console_s_own(client):
    """The stylesheet and script are served; nothing else under /console/static is."""
    assert client.get("/console/static/console.css").status_code == 200
    assert client.get("/console/static/console.js").status_code == 200
    assert client.get("/console/static/..%2Fviews.py").status_code == 404
    assert client.get("/console/static/views.py").status_code == 404


@pytest.mark.parametrize(
    "name",
    sorted(
        p.name for p in (Path(__file__).parents[2] / "bridge" / "console" / "templates").glob("*")
    ),
)
def test_templates_import_macros_with_the_context(name):
    """Macros see the CSRF token: every template importing them does so `with context`."""
    text = (Path(__file__).parents[2] / "bridge" / "console" / "templates" / name).read_text()
    for line in text.splitlines():
        if 'import "_macros.html"' in line:
            assert "with context" in line, name


def make_source(client, connection, seeded, provider: str = "wordpress") -> dict:
    return client.post("/v1/sources", headers=bearer(connection["token"]), json={
        "provider": provider, "datastore_id": seeded["datastores"][0]["id"],
    }).get_json()  # fmt: skip


def test_source_events_page_back_and_filter_by_verification(client, connection, seeded):
    """Events come 25 to a page with a link to older ones; the filter keeps one status."""
    source = make_source(client, connection, seeded)
    for n in range(27):
        client.post(source["inbound_path"], data=b'{"post_id": %d}' % n,
                    headers={"X-WP-Webhook-Signature": "bm9wZQ=="})  # fmt: skip
    sign_in(client, connection["token"])
    path = f"/console/connections/{connection['id']}/sources/{source['id']}"
    first = client.get(path).get_data(as_text=True)
    assert first.count('<span class="state state-rejected">rejected</span>') == 25
    older = re.search(r'href="([^"]+before=\d+[^"]*)">Older events', first)
    assert older
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert second.count('<span class="state state-rejected">rejected</span>') == 2
    accepted = client.get(f"{path}?status=accepted").get_data(as_text=True)
    assert "No event with status accepted yet" in accepted
    partial = client.get(f"{path}?partial=events").get_data(as_text=True)
    assert "<html" not in partial and "rejected" in partial  # what the live refresh swaps in


def test_rotating_a_source_secret_shows_the_new_one_once(client, connection, seeded):
    """The new secret is on the rotation's answer only; the old one keeps verifying (the API's
    rule), so the page says so."""
    source = make_source(client, connection, seeded)
    sign_in(client, connection["token"])
    path = f"/console/connections/{connection['id']}/sources/{source['id']}"
    rotated = client.post(f"{path}/rotate-secret", data={"csrf_token": csrf_of(client, path)})
    text = rotated.get_data(as_text=True)
    new = re.search(r'id="secret" type="text" readonly value="([^"]+)"', text)
    assert rotated.status_code == 200 and new and new.group(1) != source["secret"]
    assert "keeps verifying for 24 hours" in text
    assert new.group(1) not in client.get(path).get_data(as_text=True)


def test_deleting_a_source_asks_first_then_its_url_answers_410(client, connection, seeded):
    """Delete goes through a confirmation page; once confirmed, the inbound URL is gone (410)."""
    source = make_source(client, connection, seeded)
    sign_in(client, connection["token"])
    path = f"/console/connections/{connection['id']}/sources/{source['id']}"
    confirm = client.get(f"{path}/delete").get_data(as_text=True)
    assert "answers 410" in confirm
    deleted = client.post(f"{path}/delete", data={"csrf_token": csrf_of(client, path)})
    assert deleted.status_code == 302
    assert client.post(source["inbound_path"], data=b"{}").status_code == 410


def test_a_hook_is_replayed_since_a_time_and_deleted_from_its_page(make_app, seeded):
    """Replay since a time queues the hook's events again (same webhook ids); delete confirms,
    then the hook is gone from the list."""
    client = make_app(allow_private_targets=True).test_client()  # the target is loopback
    connection = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()
    hook = client.post("/v1/hooks", headers=bearer(connection["token"]), json={
        "target_url": "http://127.0.0.1:9/catch", "agent_id": seeded["agents"][0]["id"],
    }).get_json()  # fmt: skip
    sign_in(client, connection["token"])
    path = f"/console/connections/{connection['id']}/hooks/{hook['id']}"
    page = client.get(path).get_data(as_text=True)
    assert "http://127.0.0.1:9/catch" in page and "active" in page
    assert hook["secret"] not in page
    replayed = client.post(f"{path}/replay", data={
        "since": "2026-01-01T00:00", "csrf_token": csrf_of(client, path),
    })  # fmt: skip
    assert replayed.status_code == 302 and "notice=events_replayed" in replayed.headers["Location"]
    assert "Events queued again: 0." in client.get(replayed.headers["Location"]).get_data(
        as_text=True
    )
    bad = client.post(f"{path}/replay", data={"since": "yesterday",
                                              "csrf_token": csrf_of(client, path)})  # fmt: skip
    assert bad.status_code == 422
    assert "Delete this hook" in client.get(f"{path}/delete").get_data(as_text=True)
    client.post(f"{path}/delete", data={"csrf_token": csrf_of(client, path)})
    listed = client.get(f"/console/connections/{connection['id']}/hooks").get_data(as_text=True)
    assert "127.0.0.1:9/catch" not in listed
    assert client.get(path).status_code == 404


def test_a_hook_target_on_a_private_address_is_refused_as_by_the_api(client, connection,
                                                                    seeded):  # fmt: skip
    """The console subscribes through the same SSRF rules as the API."""
    sign_in(client, connection["token"])
    path = f"/console/connections/{connection['id']}/hooks"
    refused = client.post(path, data={
        "target_url": "http://10.0.0.5/hook", "agent_id": seeded["agents"][0]["id"],
        "csrf_token": csrf_of(client, path),
    })  # fmt: skip
    assert refused.status_code == 422
