"""WordPress sources whose sender cannot sign the body: a static token in a header instead.

WP Webhooks signs the raw body (base64 HMAC-SHA256) in its free versions 1.0.3 to 3.x, where a
secret is set. WP Webhooks Pro 5 signs something else in the same header: the HMAC of
`json_encode({date_created, webhook_name, webhook_url_name})` with the trigger's own secret,
the same for every request and not covering the body, with `date_created` sent nowhere. The
bridge cannot verify that, so such a site sends the source's secret in a header it adds
(Pro's header mapping) and the source checks that token: `config.token_header`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from tests.sources_helpers import connect, upserted
from tests.sync.providers.samples import SAMPLES

SECRET = "wp-token-secret-0123456789abcdef"
TRIGGER_SECRET = "qwertyuiopasdfghjklzxcvbnmqwerty"  # Pro's own, per trigger: 32 lowercase


def pro_signature(name: str) -> str:
    """What WP Webhooks Pro 5 puts in X-WP-Webhook-Signature (see the module's docstring)."""
    details = json.dumps(
        {"date_created": "2026-11-02 10:15:00", "webhook_name": name, "webhook_url_name": "zwb"},
        separators=(",", ":"),
    )
    digest = hmac.new(TRIGGER_SECRET.encode(), details.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def pro_headers(**extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-WP-Webhook-Name": "post_update",
        "X-WP-Webhook-URL-Name": "zwb",
        "X-WP-Webhook-Signature": pro_signature("post_update"),
        **extra,
    }


@pytest.fixture
def bridge(make_app, seeded):
    return connect(make_app, seeded)


def wordpress_source(bridge, **config):
    body = {"provider": "wordpress", "datastore_id": bridge.datastore_id, "secret": SECRET}
    if config:
        body["config"] = config
    response = bridge.create(body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_pro_5_request_is_refused_by_a_body_signature_source(bridge, sim_admin):
    """Pro 5's signature does not cover the body: a source checking the body's refuses it."""
    source = wordpress_source(bridge)
    answer = bridge.client.post(
        source["inbound_path"], data=SAMPLES["wordpress"].body, headers=pro_headers()
    )
    assert answer.status_code == 401, answer.get_json()
    assert upserted(sim_admin, bridge.datastore_id) == []


def test_a_token_header_source_accepts_pro_5_and_upserts_the_post(bridge, sim_admin):
    """With `token_header`, the source's secret in that header is the proof: the post is
    mapped as any WordPress post (Pro's own signature header is ignored)."""
    source = wordpress_source(bridge, token_header="X-Bridge-Token")
    answer = bridge.client.post(
        source["inbound_path"], data=SAMPLES["wordpress"].body,
        headers=pro_headers(**{"X-Bridge-Token": SECRET}),
    )  # fmt: skip
    assert answer.status_code == 202, answer.get_json()
    (document,) = upserted(sim_admin, bridge.datastore_id)
    assert (document["id"], document["name"]) == (f"{source['id']}:42", "Café hours")


@pytest.mark.parametrize(
    "token", [None, "wp-token-secret-0123456789abcdeX", f"Bearer {SECRET}"], ids=str
)
def test_a_token_header_source_refuses_a_missing_or_wrong_token(bridge, sim_admin, token):
    """No token, a wrong one, or the right one with a prefix the source did not ask for: 401,
    and nothing reaches ZappWay."""
    source = wordpress_source(bridge, token_header="X-Bridge-Token")
    headers = pro_headers() if token is None else pro_headers(**{"X-Bridge-Token": token})
    answer = bridge.client.post(
        source["inbound_path"], data=SAMPLES["wordpress"].body, headers=headers
    )
    assert answer.status_code == 401, answer.get_json()
    assert upserted(sim_admin, bridge.datastore_id) == []


def test_the_token_may_carry_a_prefix(bridge, sim_admin):
    """`token_prefix` is what the header's value starts with before the secret."""
    source = wordpress_source(bridge, token_header="Authorization", token_prefix="Bearer ")
    answer = bridge.client.post(
        source["inbound_path"], data=SAMPLES["wordpress"].body,
        headers=pro_headers(Authorization=f"Bearer {SECRET}"),
    )  # fmt: skip
    assert answer.status_code == 202, answer.get_json()
