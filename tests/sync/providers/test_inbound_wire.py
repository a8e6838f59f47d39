"""Headers computed by hand from each provider's documented recipe verify, pinning the recipes.

These do not use `sign`, so a shared mistake in `sign` and `verify` cannot hide here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook

from bridge.sync.providers.errors import VerificationError
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.verify import verify
from tests.sync.providers.builders import signed
from tests.sync.providers.samples import (
    CONTENTFUL,
    CONTENTFUL_SECRET,
    NOW,
    SAMPLES,
    STRIPE_SECRET,
    SW_SECRET,
)

S = str(int(NOW))
MS = str(int(NOW * 1000))


def mac(key: bytes, message: bytes, algorithm: Any = hashlib.sha256) -> bytes:
    return hmac.new(key, message, algorithm).digest()


def check(
    key: str, headers: dict[str, str], *, path: str = "/inbound/src_8f3a", secret: str | None = None
) -> None:
    sample = SAMPLES[key]
    verify(
        PROVIDERS[key],
        [secret or sample.secret],
        sample.body,
        {**sample.headers, **headers},
        method="POST",
        path=path,
        now=NOW,
        config=sample.config,
    )


def secret_of(key: str) -> bytes:
    return SAMPLES[key].secret.encode()


@pytest.mark.parametrize(
    ("key", "header"),
    [
        ("wordpress", "X-WP-Webhook-Signature"),
        ("woocommerce", "X-WC-Webhook-Signature"),
        ("shopify", "X-Shopify-Hmac-Sha256"),
    ],
)
def test_base64_body_hmac(key, header):
    """WordPress, WooCommerce and Shopify: padded base64 HMAC-SHA256 of the raw body."""
    value = base64.b64encode(mac(secret_of(key), SAMPLES[key].body)).decode()
    check(key, {header: value})


def test_github_prefixed_hex():
    """GitHub: `sha256=` + lower-case hex HMAC-SHA256 of the raw body."""
    value = "sha256=" + mac(secret_of("github"), SAMPLES["github"].body).hex()
    check("github", {"X-Hub-Signature-256": value})


def test_storyblok_sha1_hex():
    """Storyblok: bare lower-case hex HMAC-SHA1 of the raw body."""
    value = mac(secret_of("storyblok"), SAMPLES["storyblok"].body, hashlib.sha1).hex()
    check("storyblok", {"webhook-signature": value})


def test_webflow_timestamp_colon_body():
    """Webflow: hex HMAC of `<ms>:<body>` with the timestamp header in milliseconds."""
    value = mac(secret_of("webflow"), f"{MS}:".encode() + SAMPLES["webflow"].body).hex()
    check("webflow", {"x-webflow-timestamp": MS, "x-webflow-signature": value})


def test_ghost_body_then_timestamp_without_separator():
    """Ghost: hex HMAC of the body immediately followed by the ms digits, as `sha256=.., t=..`."""
    value = mac(secret_of("ghost"), SAMPLES["ghost"].body + MS.encode()).hex()
    check("ghost", {"X-Ghost-Signature": f"sha256={value}, t={MS}"})


def test_ghost_with_a_dot_separator_fails():
    """The common community mistake (`body.t`) does not verify as Ghost."""
    value = mac(secret_of("ghost"), SAMPLES["ghost"].body + f".{MS}".encode()).hex()
    with pytest.raises(VerificationError):
        check("ghost", {"X-Ghost-Signature": f"sha256={value}, t={MS}"})


def test_sanity_base64url_without_padding():
    """Sanity: `t=<ms>,v1=<base64url, no padding>` over `<ms>.<body>`."""
    raw = mac(secret_of("sanity"), f"{MS}.".encode() + SAMPLES["sanity"].body)
    value = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    check("sanity", {"sanity-webhook-signature": f"t={MS},v1={value}"})


def test_stripe_whole_secret_string_is_the_key():
    """Stripe: hex HMAC of `<s>.<body>` keyed by the whole `whsec_...` text."""
    value = mac(STRIPE_SECRET.encode(), f"{S}.".encode() + SAMPLES["stripe"].body).hex()
    check("stripe", {"Stripe-Signature": f"t={S},v1={value}"})


def test_stripe_with_a_decoded_secret_fails():
    """Decoding Stripe's secret the Standard Webhooks way yields the wrong key."""
    key = base64.b64decode(STRIPE_SECRET.removeprefix("whsec_"))
    value = mac(key, f"{S}.".encode() + SAMPLES["stripe"].body).hex()
    with pytest.raises(VerificationError):
        check("stripe", {"Stripe-Signature": f"t={S},v1={value}"})


def test_standard_webhooks_decoded_secret_is_the_key():
    """Standard Webhooks: base64 HMAC of `<id>.<s>.<body>` keyed by the decoded secret."""
    key = base64.b64decode(SW_SECRET.removeprefix("whsec_"))
    raw = mac(key, f"msg_1.{S}.".encode() + SAMPLES["standard_webhooks"].body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": S,
        "webhook-signature": "v1," + base64.b64encode(raw).decode(),
    }
    check("standard_webhooks", headers)


def test_standard_webhooks_with_the_whole_secret_as_key_fails():
    """Using the `whsec_` text itself as the key (Stripe's way) fails Standard Webhooks."""
    raw = mac(SW_SECRET.encode(), f"msg_1.{S}.".encode() + SAMPLES["standard_webhooks"].body)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": S,
        "webhook-signature": "v1," + base64.b64encode(raw).decode(),
    }
    with pytest.raises(VerificationError):
        check("standard_webhooks", headers)


def test_contentful_canonical_request():
    """Contentful: hex HMAC of method, encoded path+query, sorted signed headers and body."""
    path = "/inbound/src_8f3a?source=contentful&env=master"
    names = "x-contentful-signed-headers,x-contentful-timestamp,x-contentful-topic"
    topic = "ContentManagement.Entry.publish"
    canonical = (
        "\n".join(
            [
                "POST",
                "/inbound/src_8f3a?source%253Dcontentful%2526env%253Dmaster",
                f"x-contentful-signed-headers:{names};x-contentful-timestamp:{MS};"
                f"x-contentful-topic:{topic}",
                "",
            ]
        ).encode()
        + CONTENTFUL
    )
    headers = {
        "x-contentful-signed-headers": names,
        "x-contentful-timestamp": MS,
        "X-Contentful-Topic": topic,
        "x-contentful-signature": mac(CONTENTFUL_SECRET.encode(), canonical).hex(),
    }
    check("contentful", headers, path=path)


def test_contentful_signs_the_query_string():
    """A Contentful request whose query was changed in transit fails."""
    request = signed("contentful")
    with pytest.raises(VerificationError):
        request.but(path="/inbound/src_8f3a?source=contentful&env=staging").verify()


def test_seconds_where_milliseconds_are_expected_are_stale():
    """A Webflow timestamp written in seconds is read as ms (January 1970) and is stale."""
    value = mac(secret_of("webflow"), f"{S}:".encode() + SAMPLES["webflow"].body).hex()
    with pytest.raises(VerificationError) as caught:
        check("webflow", {"x-webflow-timestamp": S, "x-webflow-signature": value})
    assert caught.value.reason == "stale"


def test_milliseconds_where_seconds_are_expected_are_stale():
    """A Stripe timestamp written in milliseconds is read as seconds (far future) and is stale."""
    value = mac(STRIPE_SECRET.encode(), f"{MS}.".encode() + SAMPLES["stripe"].body).hex()
    with pytest.raises(VerificationError) as caught:
        check("stripe", {"Stripe-Signature": f"t={MS},v1={value}"})
    assert caught.value.reason == "stale"


def test_official_library_signature_verifies_here():
    """A signature made by the `standardwebhooks` library verifies with our verifier."""
    body = SAMPLES["standard_webhooks"].body
    at = datetime.fromtimestamp(NOW, tz=UTC)
    value = Webhook(SW_SECRET).sign("msg_lib", at, body.decode())
    check(
        "standard_webhooks",
        {"webhook-id": "msg_lib", "webhook-timestamp": S, "webhook-signature": value},
    )


def test_our_signature_verifies_with_the_official_library():
    """Headers from our `sign` pass the `standardwebhooks` library, which reads the real clock."""
    import time

    request = signed("standard_webhooks", signed_at=time.time())
    Webhook(SW_SECRET).verify(request.body, request.headers)
