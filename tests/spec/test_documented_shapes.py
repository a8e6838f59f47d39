"""/openapi.json and manifest.json hold against the live bridge (issue 12, "Done when").

Every operation the OpenAPI document lists is called here with a success example and at least
one documented error, against the simulator; each answer's status must be one the operation
documents, its body must validate against the schema documented for that status, and the
headers documented as required must be there and valid. A new operation fails
`test_every_operation_has_examples` until it gets its examples here. The manifest's actions and
trigger are held to their declared output fields the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bridge import create_app
from bridge.registry import ACTIONS, TRIGGERS
from bridge.spec.manifest import build_manifest
from tests.conftest import ADMIN_TOKEN, bearer, close_app
from tests.sources_helpers import signed_for, source_fields

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SETTINGS = {
    "allow_private_targets": True,  # hooks and callbacks on 127.0.0.1
    "upstream_max_retries": 0,  # an injected 429 answers at once
    "upstream_rate_wait_s": 0.2,
    "action_deadline_s": 0.5,
}


@dataclass
class World:
    """A bridge on the simulator with one connection, and what the examples need."""

    app: Flask
    client: FlaskClient
    token: str
    seeded: dict[str, Any]
    sim_admin: Any
    base: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)

    @property
    def agent(self) -> str:
        return str(self.seeded["agents"][0]["id"])

    @property
    def datastore(self) -> str:
        return str(self.seeded["datastores"][0]["id"])

    def post(self, path: str, body: Any = None, **kwargs: Any) -> TestResponse:
        return self.client.post(path, json=body, headers=kwargs.pop("headers", self.auth), **kwargs)

    def get(self, path: str, **params: Any) -> TestResponse:
        return self.client.get(path, query_string=params, headers=self.auth)

    def delete(self, path: str, headers: dict[str, str] | None = None) -> TestResponse:
        return self.client.delete(path, headers=self.auth if headers is None else headers)

    def hook(self) -> str:
        body = {"target_url": "http://127.0.0.1:9/hook", "agent_id": self.agent}
        return str(self.post("/v1/hooks", body).get_json()["id"])

    def source(self) -> dict[str, Any]:
        created: dict[str, Any] = self.post(
            "/v1/sources", source_fields("ghost", self.datastore)
        ).get_json()
        return created


@pytest.fixture
def world(make_app, base_settings, seeded, sim_admin) -> World:
    app = make_app(**SETTINGS)
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    return World(app, client, token, seeded, sim_admin, base_settings)


Calls = list[TestResponse]
Example = Callable[[World], tuple[Calls, Calls]]  # (success answers, error answers)


def _admin() -> dict[str, str]:
    return bearer(ADMIN_TOKEN)


def _unready(w: World) -> TestResponse:
    """/readyz of a second bridge, on a database nobody migrated: 503 saying so."""
    empty = Path(w.base["var_dir"]).parent / "never-migrated.sqlite3"
    app = create_app({**w.base, **SETTINGS, "database_url": f"sqlite:///{empty}"})
    try:
        response = app.test_client().get("/readyz")
    finally:
        close_app(app)
    assert response.get_json()["checks"]["database"] == "not_migrated"
    return response


def _agents(w: World) -> tuple[Calls, Calls]:
    w.sim_admin.add_fault("rate_limit", path="/agents", times=1, retry_after=3)
    limited = w.get("/v1/agents")
    return [w.get("/v1/agents", page=1, limit=1)], [w.get("/v1/agents", page=0), limited]


def _receive(w: World) -> tuple[Calls, Calls]:
    source = w.source()
    signed = signed_for(source, "ghost")
    path = source["inbound_path"]
    stored = w.client.post(path, data=signed.body, headers=signed.headers)
    unsigned = w.client.post(path, data=signed.body, headers={"Content-Type": "application/json"})
    return [stored], [unsigned, w.client.post("/in/" + "x" * 40, data=b"{}")]


def _receive_event(w: World) -> tuple[Calls, Calls]:
    """The per-trigger inbound URL (WP Webhooks, Ghost: one URL per event)."""
    source = w.source()
    signed = signed_for(source, "ghost")
    path = source["inbound_path"]
    stored = w.client.post(f"{path}/post.deleted", data=signed.body, headers=signed.headers)
    bad_suffix = w.client.post(f"{path}/Not%20an%20event", data=signed.body, headers=signed.headers)
    unknown = w.client.post("/in/" + "x" * 40 + "/post.deleted", data=b"{}")
    return [stored], [bad_suffix, unknown]


def _job(w: World) -> tuple[Calls, Calls]:
    w.sim_admin.add_fault("latency", path="/query$", seconds=1.0, times=1)
    late = w.post("/v1/actions/query_agent", {"agent_id": w.agent, "query": "Hi"})
    job_id = late.get_json()["error"]["job_id"]
    assert late.status_code == 504  # query_agent's documented 504, checked with its examples
    return [w.get(f"/v1/jobs/{job_id}")], [w.get("/v1/jobs/job_nope")]


def _query_agent(w: World) -> tuple[Calls, Calls]:
    ok = {"agent_id": w.agent, "query": "Hi"}
    first = w.post("/v1/actions/query_agent", ok, headers={**w.auth, "Idempotency-Key": "k1"})
    replay = w.post("/v1/actions/query_agent", ok, headers={**w.auth, "Idempotency-Key": "k1"})
    assert replay.headers.get("Idempotent-Replayed") == "true"
    later = w.post(
        "/v1/actions/query_agent", {**ok, "callback_url": "http://127.0.0.1:9/cb"}
    )  # the 202
    missing = w.post("/v1/actions/query_agent", {"agent_id": w.agent})
    unknown = w.post("/v1/actions/query_agent", {"agent_id": "nope", "query": "Hi"})
    stranger = w.post("/v1/actions/query_agent", ok, headers={})
    w.sim_admin.add_fault("latency", path="/query$", seconds=1.0, times=1)
    late = w.post("/v1/actions/query_agent", ok)
    return [first, replay, later], [missing, unknown, stranger, late]


def _upsert(w: World) -> tuple[Calls, Calls]:
    one = {"id": "doc-1", "text": "Returns within 30 days."}
    ok = w.post("/v1/actions/upsert_document", {"datastore_id": w.datastore, "document": one})
    both = w.post(
        "/v1/actions/upsert_document",
        {"datastore_id": w.datastore, "document": one, "documents": [one]},
    )
    return [ok], [both]


def _delete_document(w: World) -> tuple[Calls, Calls]:
    one = {"id": "doc-1", "text": "Returns within 30 days."}
    w.post("/v1/actions/upsert_document", {"datastore_id": w.datastore, "document": one})
    ok = w.post(
        "/v1/actions/delete_document", {"datastore_id": w.datastore, "document_id": "doc-1"}
    )
    neither = w.post("/v1/actions/delete_document", {"datastore_id": w.datastore})
    gone = w.post("/v1/actions/delete_document", {"datastore_id": w.datastore, "document_id": "x"})
    return [ok], [neither, gone]


def _on_one(made: Callable[[World], str], unknown: str) -> Callable[[str, str], Example]:
    """Examples for an operation on one resource: called on one `made` for it (success) and
    on the `unknown` id (404). `path` holds `{}` where the id goes."""

    def example(method: str, path: str) -> Example:
        def calls(w: World) -> tuple[Calls, Calls]:
            call = getattr(w, method)
            return [call(path.format(made(w)))], [call(path.format(unknown))]

        return calls

    return example


_on_one_source = _on_one(lambda w: str(w.source()["id"]), "src_nope")
_on_one_hook = _on_one(World.hook, "hook_nope")


EXAMPLES: dict[str, Example] = {
    "GET /healthz": lambda w: ([w.client.get("/healthz")], []),
    "GET /readyz": lambda w: ([w.client.get("/readyz")], [_unready(w)]),
    "GET /openapi.json": lambda w: ([w.client.get("/openapi.json")], []),
    "GET /metrics": lambda w: (
        [w.client.get("/metrics", headers=_admin())],
        [w.client.get("/metrics"), w.client.get("/metrics", headers=w.auth)],
    ),
    "GET /manifest.json": lambda w: ([w.client.get("/manifest.json")], []),
    "POST /v1/connections": lambda w: (
        [w.post("/v1/connections", {"api_key": w.seeded["key"], "label": "Again"}, headers={})],
        [
            w.post("/v1/connections", {"label": "no key"}, headers={}),
            w.client.post("/v1/connections", data=b"{", content_type="application/json"),
        ],
    ),
    "GET /v1/me": lambda w: (
        [w.get("/v1/me"), w.get("/v1/me", verify=1)],
        [w.client.get("/v1/me")],
    ),
    "DELETE /v1/me": lambda w: ([w.delete("/v1/me")], [w.delete("/v1/me")]),
    "POST /v1/me/rotate-key": lambda w: (
        [w.post("/v1/me/rotate-key", {"api_key": w.sim_admin.create_key(w.seeded["org"]["id"])})],
        [w.post("/v1/me/rotate-key", {}), w.post("/v1/me/rotate-key", {"api_key": "zw_bad"})],
    ),
    "POST /v1/me/rotate-token": lambda w: (
        [w.post("/v1/me/rotate-token")],
        [w.post("/v1/me/rotate-token", headers={})],
    ),
    "POST /v1/me/rotate-signing-secret": lambda w: (
        [w.post("/v1/me/rotate-signing-secret")],
        [w.post("/v1/me/rotate-signing-secret", headers={})],
    ),
    "GET /v1/admin/connections": lambda w: (
        [w.client.get("/v1/admin/connections", headers=_admin())],
        [w.client.get("/v1/admin/connections", headers=w.auth)],
    ),
    "DELETE /v1/admin/connections/{connection_id}": lambda w: (
        [w.delete(f"/v1/admin/connections/{w.get('/v1/me').get_json()['id']}", _admin())],
        [w.delete("/v1/admin/connections/conn_nope", _admin())],
    ),
    "POST /v1/sources": lambda w: (
        [w.post("/v1/sources", source_fields("ghost", w.datastore))],
        [w.post("/v1/sources", {"provider": "nope", "datastore_id": w.datastore})],
    ),
    "GET /v1/sources": lambda w: ([w.get("/v1/sources")], [w.client.get("/v1/sources")]),
    "DELETE /v1/sources/{source_id}": _on_one_source("delete", "/v1/sources/{}"),
    "POST /v1/sources/{source_id}/rotate-secret": _on_one_source(
        "post", "/v1/sources/{}/rotate-secret"
    ),
    "POST /v1/sources/{source_id}/replay": _on_one_source("post", "/v1/sources/{}/replay"),
    "GET /v1/sources/{source_id}/events": lambda w: (
        [w.get(f"/v1/sources/{w.source()['id']}/events", limit=10)],
        [
            w.get(f"/v1/sources/{w.source()['id']}/events", limit=0),
            w.get("/v1/sources/src_nope/events"),
        ],
    ),
    "POST /in/{token}": _receive,
    "POST /in/{token}/{event}": _receive_event,
    "POST /v1/actions/query_agent": _query_agent,
    "POST /v1/actions/upsert_document": _upsert,
    "POST /v1/actions/delete_document": _delete_document,
    "POST /v1/actions/query_datastore": lambda w: (
        [w.post("/v1/actions/query_datastore", {"datastore_id": w.datastore, "query": "return"})],
        [w.post("/v1/actions/query_datastore", {"datastore_id": w.datastore, "top_k": 0})],
    ),
    "GET /v1/jobs/{job_id}": _job,
    "GET /v1/agents": _agents,
    "GET /v1/datastores": lambda w: (
        [w.get("/v1/datastores"), w.get("/v1/datastores", format="options")],
        [w.get("/v1/datastores", limit=501)],
    ),
    "GET /v1/triggers/new_conversation": lambda w: (
        [w.get("/v1/triggers/new_conversation", agent_id=w.agent, limit=5)],
        [
            w.get("/v1/triggers/new_conversation", sample=1),
            w.get("/v1/triggers/new_conversation", agent_id="nope"),
        ],
    ),
    "POST /v1/hooks": lambda w: (
        [
            w.post("/v1/hooks", {alias: "http://127.0.0.1:9/hook", "agent_id": w.agent})
            for alias in ("target_url", "targetUrl", "url", "hookUrl")
        ],
        [
            w.post("/v1/hooks", {"target_url": "http://127.0.0.1:9/hook"}),
            w.post(
                "/v1/hooks",
                {
                    "url": "http://127.0.0.1:9/a",
                    "hookUrl": "http://127.0.0.1:9/b",
                    "agent_id": w.agent,
                },
            ),
        ],
    ),
    "GET /v1/hooks": lambda w: ([w.get("/v1/hooks")], [w.client.get("/v1/hooks")]),
    "GET /v1/hooks/{subscription_id}": _on_one_hook("get", "/v1/hooks/{}"),
    "DELETE /v1/hooks/{subscription_id}": _on_one_hook("delete", "/v1/hooks/{}"),
    "POST /v1/hooks/{subscription_id}/replay": lambda w: (
        [w.post(f"/v1/hooks/{w.hook()}/replay?since=2026-01-01T00:00:00Z")],
        [
            w.post(f"/v1/hooks/{w.hook()}/replay?since=yesterday"),
            w.post("/v1/hooks/hook_nope/replay"),
        ],
    ),
}


def _spec(client: FlaskClient) -> dict[str, Any]:
    spec: dict[str, Any] = client.get("/openapi.json").get_json()
    return spec


def _validator(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A validator of `schema` whose `#/components/...` references resolve in `spec`."""
    return jsonschema_rs.validator_for(
        {"$schema": DRAFT, "components": spec["components"], **schema}
    )


def _check(spec: dict[str, Any], key: str, response: TestResponse) -> list[str]:
    """What is wrong with `response` as an answer of operation `key` ("METHOD /path")."""
    method, path = key.split(" ", 1)
    answers = spec["paths"][path][method.lower()]["responses"]
    documented = answers.get(str(response.status_code))
    if documented is None:
        return [f"{key}: status {response.status_code} is not documented ({sorted(answers)})"]
    problems = []
    content = documented.get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if content and schema is None:  # another media type (Prometheus text): that type, a body
        if response.mimetype not in content or not response.get_data():
            problems.append(f"{key} {response.status_code}: not a {sorted(content)} body")
    elif schema is not None:
        body = json.loads(response.get_data() or b"null")
        problems += [
            f"{key} {response.status_code}: {error.message[:200]}"
            for error in _validator(spec, schema).iter_errors(body)
        ]
    elif response.get_data():
        problems.append(f"{key} {response.status_code}: a body where none is documented")
    for name, header in documented.get("headers", {}).items():
        value = response.headers.get(name)
        if value is None:
            if header.get("required"):
                problems.append(f"{key} {response.status_code}: required header {name} missing")
            continue
        typed: Any = int(value) if header["schema"].get("type") == "integer" else value
        if not _validator(spec, header["schema"]).is_valid(typed):
            problems.append(f"{key} {response.status_code}: header {name}={value!r} invalid")
    return problems


def test_every_operation_has_examples(client):
    """Each operation of /openapi.json has a success example and an error example here."""
    spec = _spec(client)
    listed = {f"{m.upper()} {p}" for p, methods in spec["paths"].items() for m in methods}
    assert listed == set(EXAMPLES)


@pytest.mark.parametrize("key", sorted(EXAMPLES))
def test_operation_answers_as_documented(key, world):
    """The operation's success and error examples answer documented statuses, with bodies and
    headers that validate against the schemas documented for those statuses."""
    spec = _spec(world.client)
    successes, errors = EXAMPLES[key](world)
    assert successes
    assert all(200 <= r.status_code < 300 for r in successes), [
        (r.status_code, r.get_json(silent=True)) for r in successes
    ]
    method, path = key.split(" ", 1)
    declared_errors = [s for s in spec["paths"][path][method.lower()]["responses"] if s >= "400"]
    if declared_errors:
        assert errors, f"{key} documents {declared_errors}: give an error example"
    assert all(r.status_code >= 400 for r in errors), [r.status_code for r in errors]
    problems = [problem for r in successes + errors for problem in _check(spec, key, r)]
    assert problems == []


def test_reads_do_not_document_body_errors(client):
    """A GET or DELETE lists no 400 (malformed JSON), 409 or 413 (body too large): it reads no
    body and holds no Idempotency-Key."""
    spec = _spec(client)
    wrong = [
        (method, path, status)
        for path, methods in spec["paths"].items()
        for method, operation in methods.items()
        if method in ("get", "delete")
        for status in operation["responses"]
        if status in ("400", "409", "413")
    ]
    assert wrong == []


def test_subscribe_documents_the_aliases_and_only_the_sent_events(client):
    """POST /v1/hooks documents targetUrl, url and hookUrl as alternatives of target_url (one of
    them), and its events are the registry's (no name the bridge never sends)."""
    spec = _spec(client)
    schema = spec["components"]["schemas"]["SubscribeIn"]
    alternatives = [group["required"][0] for group in schema["oneOf"]]
    assert {"target_url", "targetUrl", "url", "hookUrl"} <= set(alternatives)
    assert schema["properties"]["event"]["enum"] == [t.event_type for t in TRIGGERS]
    assert "conversation.created" not in json.dumps(spec)


def test_405_answers_carry_allow(client):
    """A method a path does not serve gets 405 with Allow naming the documented methods."""
    spec = _spec(client)
    response = client.put("/v1/hooks")
    assert response.status_code == 405
    allowed = {m.strip().lower() for m in response.headers["Allow"].split(",")}
    assert set(spec["paths"]["/v1/hooks"]) <= allowed


def _manifest_fields(fields_: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    return {f["key"] for f in fields_}, {f["key"] for f in fields_ if f["required"]}


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.key)
def test_manifest_action_outputs_match_live_answers(action, world):
    """A live call of each manifest action answers the declared output fields: every required
    one with a value, nothing undeclared."""
    manifest = build_manifest(ACTIONS, TRIGGERS)
    described = next(a for a in manifest["actions"] if a["key"] == action.key)
    examples = {
        "query_agent": {"agent_id": world.agent, "query": "Hi"},
        "upsert_document": {"datastore_id": world.datastore,
                            "document": {"id": "doc-1", "text": "Returns within 30 days."}},
        "delete_document": {"datastore_id": world.datastore, "document_id": "doc-1"},
        "query_datastore": {"datastore_id": world.datastore, "query": "return"},
    }  # fmt: skip
    if action.key == "delete_document":
        world.post("/v1/actions/upsert_document", examples["upsert_document"])
    response = world.post(described["path"], examples[action.key])
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    items = answer if isinstance(answer, list) else [answer]
    declared, required = _manifest_fields(described["output_fields"])
    for item in items:
        assert set(item) <= declared, set(item) - declared
        assert all(item.get(key) is not None for key in required), item


def test_manifest_trigger_items_match_live_polls(world):
    """Polled items carry only the manifest's output fields, the required ones with values."""
    (trigger,) = build_manifest(ACTIONS, TRIGGERS)["triggers"]
    items = world.get(trigger["polling"]["path"], agent_id=world.agent).get_json()
    assert items
    declared, required = _manifest_fields(trigger["output_fields"])
    for item in items:
        assert set(item) <= declared
        assert all(item.get(key) is not None for key in required), item
    assert re.fullmatch(r"[A-Za-z0-9@_.:-]+", items[0][trigger["polling"]["dedupe_key"]])


def test_headers_the_bridge_always_sends_are_declared_required(client):
    """Retry-After on every 429 and 409 and X-Total-Count on dropdown pages are `required`, so
    contract testers check them; actions declare Idempotent-Replayed on their answers."""
    spec = _spec(client)
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            for status in ("429", "409"):
                if status in operation["responses"]:
                    headers = operation["responses"][status]["headers"]
                    assert headers["Retry-After"]["required"] is True, (path, status)
    for path in ("/v1/agents", "/v1/datastores"):
        page = spec["paths"][path]["get"]["responses"]["200"]
        assert page["headers"]["X-Total-Count"]["required"] is True
    for action in ACTIONS:
        answer = spec["paths"][f"/v1/actions/{action.key}"]["post"]["responses"]["200"]
        assert answer["headers"]["Idempotent-Replayed"]["required"] is False
