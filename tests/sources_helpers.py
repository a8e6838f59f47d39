"""Shared pieces of the inbound-source tests: a connected bridge, sources made through the API,
requests signed for a source's real inbound URL, and readers of what was stored or sent upstream.

Plain functions and small records only (fixtures stay in each test module). Requests are signed
with `bridge.sync.providers.signing.sign`, the sender half of the verifier, over the real
`/in/<token>` path (Contentful signs it); everything is posted through the app's routes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from bridge.infra.models import PendingDocument
from bridge.sync.providers.generic import FieldMap, GenericConfig
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.signing import sign
from sim.testing import serve_in_thread
from tests.conftest import bearer, runtime_of
from tests.sync.providers.builders import SignedRequest
from tests.sync.providers.samples import SAMPLES

# Inline sync: huey runs in immediate mode, and a zero debounce schedules the task without delay.
INLINE = {"sync_debounce_s": 0}


@dataclass(frozen=True)
class Bridge:
    """A bridge app with one connection registered on the seeded key."""

    app: Flask
    client: FlaskClient
    token: str
    connection_id: str
    datastore_id: str

    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    def create(self, body: dict[str, Any]) -> TestResponse:
        return self.client.post("/v1/sources", json=body, headers=self.headers())

    def source(self, key: str, **fields: Any) -> dict[str, Any]:
        """Create a source for `key` with its sample's secret and options; return the 201 body."""
        response = self.create({**source_fields(key, self.datastore_id), **fields})
        assert response.status_code == 201, response.get_json()
        created: dict[str, Any] = response.get_json()
        return created

    def post(self, source: dict[str, Any], request: SignedRequest) -> TestResponse:
        """POST a signed request to the source's inbound URL, as the CMS would."""
        return self.client.post(source["inbound_path"], data=request.body, headers=request.headers)

    def events(self, source: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.client.get(f"/v1/sources/{source['id']}/events", headers=self.headers())
        assert response.status_code == 200, response.get_json()
        found: list[dict[str, Any]] = response.get_json()
        return found

    def rotate(self, source: dict[str, Any], **body: Any) -> TestResponse:
        path = f"/v1/sources/{source['id']}/rotate-secret"
        return self.client.post(path, json=body, headers=self.headers())


def connect(make_app: Callable[..., Flask], seeded: dict[str, Any], **overrides: Any) -> Bridge:
    """Build a bridge (inline sync unless overridden) and register the seeded key on it."""
    app = make_app(**{**INLINE, **overrides})
    client = app.test_client()
    response = client.post("/v1/connections", json={"api_key": seeded["key"], "label": "CMS"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    return Bridge(app, client, body["token"], body["id"], seeded["datastores"][0]["id"])


def source_fields(key: str, datastore_id: str) -> dict[str, Any]:
    """The `POST /v1/sources` body for a provider's sample: its secret, config and mapping."""
    sample = SAMPLES[key]
    body: dict[str, Any] = {"provider": key, "datastore_id": datastore_id, "secret": sample.secret}
    if sample.config is not None:
        body.update(api_options(sample.config))
    return body


def api_options(config: GenericConfig) -> dict[str, Any]:
    """Translate a `GenericConfig` into the API's JSON `config` and `mapping`."""
    options: dict[str, Any] = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name not in ("mapping", "dedupe") and getattr(config, f.name) is not None
    }
    if config.dedupe:
        options["dedupe"] = list(config.dedupe)
    return {"config": options, "mapping": api_mapping(config.mapping)}


def api_mapping(mapping: FieldMap) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(mapping):
        value = getattr(mapping, f.name)
        if f.name == "metadata":
            out[f.name] = dict(value)
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        elif value is not None:
            out[f.name] = value
    return out


def signed_for(
    source: dict[str, Any],
    key: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    secrets: Sequence[str] | None = None,
    signed_at: float | None = None,
    msg_id: str | None = None,
) -> SignedRequest:
    """The provider's sample (or `body`) signed for this source's real inbound path."""
    sample = SAMPLES[key]
    raw = sample.body if body is None else body
    now = time.time() if signed_at is None else signed_at
    signing = list(secrets or [sample.secret])
    extra = {"msg_id": msg_id} if msg_id is not None else {}
    out = sign(PROVIDERS[key], signing, raw, now=now, path=source["inbound_path"],
               headers={**sample.headers, **(headers or {})}, config=sample.config,
               **extra)  # fmt: skip
    return SignedRequest(PROVIDERS[key], raw, out, tuple(signing), now,
                         source["inbound_path"], config=sample.config)  # fmt: skip


def signature_header(key: str) -> str:
    """The header that carries the signature (or static token) for a provider's sample."""
    scheme = PROVIDERS[key].scheme
    if scheme is None:
        config = SAMPLES[key].config
        assert config is not None
        return config.header
    return scheme.header


def pending_rows(app: Flask, source_id: str) -> list[PendingDocument]:
    with runtime_of(app).sessions() as session:
        rows = session.scalars(
            select(PendingDocument)
            .where(PendingDocument.source_id == source_id)
            .order_by(PendingDocument.cms_id)
        )
        return list(rows)


def snapshot(app: Flask, source_id: str) -> list[tuple[Any, ...]]:
    """Every column of the source's pending documents, to prove nothing changed."""
    return [
        (r.cms_id, r.op, r.version, r.document_json, r.state, r.attempts, r.updated_at)
        for r in pending_rows(app, source_id)
    ]


def upstream_calls(sim_admin: Any, method: str | None = None) -> list[dict[str, Any]]:
    """Document writes the simulator logged (upserts and deletes), optionally one method."""
    return [
        r
        for r in sim_admin.requests()
        if ("/upsert" in r["path"] or "/datasources/" in r["path"])
        and (method is None or r["method"] == method)
    ]


def upserted(sim_admin: Any, datastore_id: str) -> list[dict[str, Any]]:
    """Every document body sent to the datastore's upsert route, in order."""
    return [
        doc
        for r in sim_admin.requests()
        if r["method"] == "POST" and r["path"].endswith(f"/datastores/{datastore_id}/upsert")
        for doc in r["body"]["documents"]
    ]


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """Serve the bridge app on a real socket in a thread (threaded server); yield its base URL."""
    with serve_in_thread(app) as base_url:
        yield base_url


def token_of(source: dict[str, Any]) -> str:
    """The token at the end of a source's inbound path (what the CMS's URL carries)."""
    return str(source["inbound_path"]).rsplit("/", 1)[-1]
