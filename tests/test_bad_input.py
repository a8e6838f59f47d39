"""Hostile or careless input gets a 4xx in the usual envelope naming what to fix, never a 500.

Each case is what a client can send by accident or on purpose: JSON nested thousands deep, a
lone UTF-16 surrogate in a string, an integer past the database's range, a JSON body sent as
text/plain, a method the route does not have. The server-level cases (a body cut short, a
request line or headers gunicorn refuses) are in `tests/test_web_server.py`.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from flask import Flask

from bridge.infra.errors import MAX_MESSAGE
from bridge.infra.jsontext import (
    API_DEPTH,
    INBOUND_DEPTH,
    JsonTooDeep,
    check_depth,
    first_unencodable,
)
from bridge.registry import ACTIONS
from bridge.schemas import SQL_INT_MAX
from tests.console.test_console_pages import sign_in
from tests.sources_helpers import Bridge, connect, served, signed_for, source_fields, upserted
from tests.sync.providers.builders import signed
from tests.sync.providers.samples import SAMPLES
from tests.sync_helpers import FAST, local_cms
from tests.sync_helpers import Bridge as SyncBridge
from tests.test_web_server import raw_exchange

JSON = {"Content-Type": "application/json"}
SURROGATE = "\ud800"


@pytest.fixture
def bridge(make_app, seeded) -> Bridge:
    return connect(make_app, seeded)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def refusal(response: Any, status: int, code: str) -> dict[str, Any]:
    """The error object of a refusal, checked for its status, code and message size."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    error: dict[str, Any] = response.get_json()["error"]
    assert error["code"] == code, error
    assert len(error["message"]) <= MAX_MESSAGE
    return error


def json_operations(app: Flask) -> list[tuple[str, str]]:
    """Every operation of the API document that takes a JSON body, except the inbound URLs
    (their own, deeper limit: tested below)."""
    document = app.test_client().get("/openapi.json").get_json()
    return sorted(
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict)
        and "requestBody" in operation
        and not path.startswith("/in/")
    )


def fill(path: str, bridge: Bridge) -> str:
    """A path template with real ids owned by the bridge's connection."""
    if "{source_id}" in path:
        path = path.replace("{source_id}", bridge.source("wordpress")["id"])
    assert "{" not in path, f"no id to fill {path} with: teach this test"
    return path


# --- 1. nesting depth ----------------------------------------------------------------------------


def test_every_json_endpoint_refuses_deep_nesting_before_parsing(bridge):
    """JSON nested 10,000 deep is a 400 `json_too_deep` naming the limit on every operation
    with a JSON body (unauthenticated `POST /v1/connections` included), not a RecursionError."""
    operations = json_operations(bridge.app)
    assert ("POST", "/v1/connections") in operations
    assert {f"/v1/actions/{a.key}" for a in ACTIONS} <= {path for _, path in operations}
    for method, template in operations:
        path = fill(template, bridge)
        response = bridge.client.open(path, method=method, data=nested(10_000),
                                      headers={**JSON, **bridge.headers()})  # fmt: skip
        error = refusal(response, 400, "json_too_deep")
        assert str(API_DEPTH) in error["message"], (path, error)


def test_nesting_up_to_the_limit_reaches_the_schema(bridge):
    """At exactly API_DEPTH levels (the body's own object counts) the body is parsed and judged
    by the schema (422 naming the field), so the limit refuses only what is deeper."""
    agent = {"agent_id": "agent_1", "query": json.loads(nested(API_DEPTH - 1))}
    response = bridge.client.post("/v1/actions/query_agent", json=agent, headers=bridge.headers())
    assert refusal(response, 422, "invalid_input")["fields"] == ["query"]
    agent["query"] = json.loads(nested(API_DEPTH))
    response = bridge.client.post("/v1/actions/query_agent", json=agent, headers=bridge.headers())
    refusal(response, 400, "json_too_deep")


def test_brackets_inside_strings_do_not_count_as_nesting():
    """The depth scan skips strings, escaped quotes included, so text full of brackets passes."""
    check_depth(json.dumps({"text": "[" * 1000 + '"\\' + "{" * 1000}).encode(), 2)
    check_depth(b'["\\"[[[[", [[]]]', 3)
    with pytest.raises(JsonTooDeep, match="deeper than 2"):
        check_depth(b'["]]]]", [[[]]]]', 2)


def test_an_inbound_webhook_allows_deeper_json_up_to_its_own_limit(bridge):
    """A signed CMS webhook may nest up to INBOUND_DEPTH (payloads are not ours to shape);
    deeper is a 400 `json-too-deep` naming that limit, recorded in the source's events."""
    source = bridge.source("woocommerce")
    sample = json.loads(signed_for(source, "woocommerce").body)
    ok = json.dumps({**sample, "extra": json.loads(nested(INBOUND_DEPTH - 1))}).encode()
    answer = bridge.post(source, signed_for(source, "woocommerce", body=ok))
    assert answer.status_code in (200, 202), answer.get_json()
    deep = json.dumps({**sample, "extra": json.loads(nested(INBOUND_DEPTH))}).encode()
    answer = bridge.post(source, signed_for(source, "woocommerce", body=deep))
    error = refusal(answer, 400, "json-too-deep")
    assert str(INBOUND_DEPTH) in error["message"]
    assert bridge.events(source)[0]["reason"] == "json-too-deep"


# --- 2. lone surrogates --------------------------------------------------------------------------


def action_bodies(seeded: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(action, body with a lone surrogate in one string field, that field's path)."""
    agent, store = seeded["agents"][0]["id"], seeded["datastores"][0]["id"]
    doc = {"id": "doc-1", "text": "Some text", "title": "A title"}
    return [
        ("query_agent", {"agent_id": agent, "query": f"Hi {SURROGATE}"}, "query"),
        ("upsert_document", {"datastore_id": store, "document": {**doc, "id": SURROGATE}},
         "document.id"),
        ("upsert_document", {"datastore_id": store, "document": {**doc, "title": SURROGATE}},
         "document.title"),
        ("upsert_document", {"datastore_id": store, "documents": [doc, {**doc, "text": SURROGATE}]},
         "documents.1.text"),
        ("delete_document", {"datastore_id": store, "document_id": SURROGATE}, "document_id"),
        ("query_datastore", {"datastore_id": store, "query": SURROGATE}, "query"),
    ]  # fmt: skip


def test_a_lone_surrogate_in_an_action_field_is_a_422_naming_it(bridge, seeded, sim_admin):
    """`"\\ud800"` in any string field of an action is a 422 naming the field's path, with no
    Python exception text, and nothing reaches ZappWay."""
    before = len(sim_admin.requests())
    for action, body, path in action_bodies(seeded):
        raw = json.dumps(body)  # ensure_ascii: the surrogate travels as the escape \ud800
        assert "\\ud800" in raw
        response = bridge.client.post(f"/v1/actions/{action}", data=raw,
                                      headers={**JSON, **bridge.headers()})  # fmt: skip
        error = refusal(response, 422, "invalid_input")
        assert error["fields"] == [path], (action, error)
        assert "codec" not in error["message"] and "surrogates not allowed" not in error["message"]
    assert len(sim_admin.requests()) == before


def test_a_json_body_not_in_utf8_is_a_400(bridge, seeded, sim_admin):
    """JSON text in UTF-16 or UTF-32 (which `json.loads` would decode) is refused as malformed:
    the body is read as UTF-8 only, so an escaped lone surrogate cannot slip past the check in
    another encoding and fail later as a 500. Nothing reaches ZappWay."""
    before = len(sim_admin.requests())
    body = json.dumps({"agent_id": seeded["agents"][0]["id"], "query": f"Hi {SURROGATE}"})
    for encoding in ("utf-16", "utf-32"):
        response = bridge.client.post("/v1/actions/query_agent", data=body.encode(encoding),
                                      headers={**JSON, **bridge.headers()})  # fmt: skip
        refusal(response, 400, "malformed_json")
    assert len(sim_admin.requests()) == before


def test_a_lone_surrogate_in_a_source_secret_is_blamed_on_the_secret(bridge):
    """The same in a source's `secret` (at creation or rotation) names `secret`, not `config`,
    and shows no exception text."""
    body = {**source_fields("wordpress", bridge.datastore_id), "secret": f"abcdefgh{SURROGATE}"}
    error = refusal(bridge.create(body), 422, "invalid_input")
    assert error["fields"] == ["secret"]
    assert "utf-8" not in error["message"].lower() and "codec" not in error["message"]
    source = bridge.source("wordpress")
    error = refusal(bridge.rotate(source, secret=f"abcdefgh{SURROGATE}"), 422, "invalid_input")
    assert error["fields"] == ["secret"]


def test_a_surrogate_pair_is_text_and_a_lone_one_in_a_key_is_named_escaped():
    """A well-formed pair (an emoji) is accepted; a lone surrogate in an object key is reported
    with the key escaped, so the error message is itself valid text."""
    assert first_unencodable(json.loads('{"a": ["\\ud83d\\ude00"]}')) is None
    path = first_unencodable(json.loads('{"a": [{"\\udc00": 1}]}'))
    assert path == "a.0.\\udc00"
    path.encode("utf-8")


def test_a_lone_surrogate_in_a_cms_webhook_becomes_a_replacement_character(bridge, sim_admin):
    """A CMS's payload is not the user's to fix: a lone surrogate in it becomes U+FFFD, and the
    document still reaches ZappWay (it used to crash the upsert, leaving it pending)."""
    source = bridge.source("woocommerce")
    sample = json.loads(signed_for(source, "woocommerce").body)
    sample["name"] = f"Bread {SURROGATE}loaf"
    answer = bridge.post(
        source, signed_for(source, "woocommerce", body=json.dumps(sample).encode())
    )
    assert answer.status_code == 202, answer.get_json()
    sent = upserted(sim_admin, bridge.datastore_id)
    assert len(sent) == 1
    assert "Bread \ufffdloaf" in json.dumps(sent[0], ensure_ascii=False)


def test_a_lone_surrogate_in_fetched_cms_content_is_replaced_too(make_app, seeded, sim_admin):
    """The same for content the worker fetches for a thin payload (a Storyblok story)."""
    sim_admin.settings(rate_limit_enabled=False)
    app = make_app(**FAST, allow_private_targets=True, sync_retry_schedule=(0.1, 0.1, 0.1))
    bridge = SyncBridge(app, seeded["key"])
    with local_cms() as cms:
        cms.content["/v2/cdn/stories/7"] = {"story": {
            "id": 7, "name": f"Home {SURROGATE}", "published_at": "2024-05-01T10:00:00.000Z",
            "content": {"body": [{"text": f"Fresh {SURROGATE}bread"}]},
        }}  # fmt: skip
        source = bridge.create_source(
            seeded["datastores"][0]["id"], provider="storyblok",
            secret=SAMPLES["storyblok"].secret,
            credentials={"token": "t", "base_url": cms.url},
        )  # fmt: skip
        payload = {**json.loads(SAMPLES["storyblok"].body), "story_id": 7}
        request = signed("storyblok", body=json.dumps(payload).encode(), signed_at=time.time())
        assert bridge.post(source, request.body, request.headers).status_code == 202
        bridge.drain()
    assert bridge.row("7").state == "delivered", bridge.row("7").last_error
    sent = upserted(sim_admin, seeded["datastores"][0]["id"])
    assert "Fresh \ufffdbread" in json.dumps(sent, ensure_ascii=False)


# --- 3. integers in range ------------------------------------------------------------------------


@pytest.mark.parametrize("before", ["9223372036854775808", str(SQL_INT_MAX + 1)])
def test_an_events_page_before_out_of_range_is_a_422_naming_it(bridge, before):
    """`before` past the INTEGER range is a 422 naming `before` (2**63 used to overflow
    SQLite's binding as a 500); the top of the range itself is served."""
    source = bridge.source("wordpress")
    events = f"/v1/sources/{source['id']}/events"
    response = bridge.client.get(f"{events}?before={before}", headers=bridge.headers())
    assert refusal(response, 422, "invalid_input")["fields"] == ["before"]
    response = bridge.client.get(f"{events}?before={SQL_INT_MAX}", headers=bridge.headers())
    assert response.status_code == 200
    assert response.get_json() == []


def test_every_integer_parameter_is_bounded_by_the_sql_range(app):
    """Every integer query or path parameter the API declares has a maximum within SQL_INT_MAX
    (the shared `bridge.schemas.integer` field), so none can overflow a query."""
    document = app.test_client().get("/openapi.json").get_json()
    integers = [
        (path, parameter["name"], parameter["schema"])
        for path, operations in document["paths"].items()
        for operation in operations.values()
        if isinstance(operation, dict)
        for parameter in operation.get("parameters", [])
        if parameter.get("schema", {}).get("type") == "integer"
    ]
    assert any(name == "before" for _, name, _ in integers)
    unbounded = [(p, n) for p, n, s in integers if s.get("maximum", SQL_INT_MAX + 1) > SQL_INT_MAX]
    assert not unbounded


def test_the_console_events_page_bounds_before_too(bridge):
    """The console's source page takes the same `before` and refuses it the same way (422)."""
    source = bridge.source("wordpress")
    sign_in(bridge.client, bridge.token)
    path = f"/console/connections/{bridge.connection_id}/sources/{source['id']}"
    assert bridge.client.get(f"{path}?before={SQL_INT_MAX}").status_code == 200
    response = bridge.client.get(f"{path}?before=9223372036854775808")
    assert response.status_code == 422
    assert "before" in response.get_data(as_text=True)


# --- 4. a body cut short (under gunicorn: tests/test_web_server.py) ---------------------------


def test_a_stalled_body_is_a_400_on_the_development_server_too(make_app):
    """Served by werkzeug (`make run`'s server, the tests' real sockets), a body that stops
    short of its Content-Length is a JSON 400 `incomplete_body` after WEB_BODY_TIMEOUT."""
    app = make_app(body_timeout_s=0.5)
    short = (b"POST /v1/connections HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n"
             b"Content-Type: application/json\r\n\r\n{")  # fmt: skip
    with served(app) as base:
        answer, took = raw_exchange(base, short, wait=20)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert json.loads(body)["error"]["code"] == "incomplete_body"
    assert took < 15  # a bound on correctness (no hang), not a timing goal


# --- 5. methods and content types ----------------------------------------------------------------


def test_every_405_says_which_methods_the_route_has(app):
    """A method a route does not have is a 405 in the JSON envelope whose `Allow` header lists
    the route's methods (what schemathesis and HTTP clients check)."""
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        methods = rule.methods or set()
        wrong = next(m for m in ("PATCH", "PUT", "DELETE", "POST") if m not in methods)
        response = client.open(re.sub(r"<(?:\w+:)?\w+>", "x", rule.rule), method=wrong)
        if response.status_code != 405:  # another rule on the same path takes that method
            continue
        assert response.get_json()["error"]["code"] == "method_not_allowed", rule.rule
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert methods <= allowed, (rule.rule, allowed)
        checked += 1
    assert checked > 10


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_a_json_body_sent_without_the_json_content_type_says_so(bridge, seeded, content_type):
    """A JSON body sent as text/plain (or with no Content-Type) is a 400 whose message tells
    the user to send `Content-Type: application/json`."""
    body = json.dumps({"agent_id": seeded["agents"][0]["id"], "query": "Hi"})
    headers = {**bridge.headers(), **({"Content-Type": content_type} if content_type else {})}
    response = bridge.client.post("/v1/actions/query_agent", data=body, headers=headers)
    error = refusal(response, 400, "malformed_json")
    assert "Content-Type: application/json" in error["message"]
    response = bridge.client.post("/v1/actions/query_agent", data=b"{nope",
                                  headers={**JSON, **bridge.headers()})  # fmt: skip
    error = refusal(response, 400, "malformed_json")  # with the right type: only "not JSON"
    assert "Content-Type" not in error["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"agent_id":', "not valid JSON (Expecting value at line 1, column 13)"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        (b"[1, 2]", "not an array"),
        (b'"text"', "not a string"),
        (b"null", "not null"),
    ],
)
def test_a_body_that_is_not_a_json_object_says_what_it_is(bridge, body, says):
    """The 400 `malformed_json` says what is wrong (README: "saying so"): where the JSON
    breaks, that the bytes are not UTF-8, or what the body is instead of an object."""
    response = bridge.client.post("/v1/actions/query_agent", data=body,
                                  headers={**JSON, **bridge.headers()})  # fmt: skip
    error = refusal(response, 400, "malformed_json")
    assert says in error["message"], error
    assert len(error["message"]) <= 250
