"""Malformed signature headers fail closed with VerificationError (400), never another error."""

from __future__ import annotations

import pytest

from bridge.sync.providers.errors import VerificationError
from tests.sync.providers.builders import signed
from tests.sync.providers.samples import NOW

S = str(int(NOW))
MS = str(int(NOW * 1000))
HEX64 = "ab" * 32
B64 = "q" * 43 + "="

MALFORMED = [
    ("stripe", "Stripe-Signature", f"t=abc,v1={HEX64}"),
    ("stripe", "Stripe-Signature", f"t={S}"),
    ("stripe", "Stripe-Signature", f"t={S},v0={HEX64}"),
    ("stripe", "Stripe-Signature", f"t={S},,v1={HEX64}"),
    ("stripe", "Stripe-Signature", f"t={S},v1={HEX64},"),
    ("stripe", "Stripe-Signature", "garbage"),
    ("stripe", "Stripe-Signature", f"t={S},v1=not-hex-at-all"),
    ("stripe", "Stripe-Signature", f"t={S},v1={HEX64[:-2]}"),
    ("stripe", "Stripe-Signature", f"t={S},t={S},v1={HEX64}"),
    ("stripe", "Stripe-Signature", f"t=-{S},v1={HEX64}"),
    ("stripe", "Stripe-Signature", f"t=١٢٣,v1={HEX64}"),
    ("sanity", "sanity-webhook-signature", "t=abc,v1=c2lnbmF0dXJl"),
    ("sanity", "sanity-webhook-signature", f"t={MS}"),
    ("sanity", "sanity-webhook-signature", f"t={MS},v1=not/base64url+"),
    ("sanity", "sanity-webhook-signature", "garbage"),
    ("ghost", "X-Ghost-Signature", f"sha256=nothex, t={MS}"),
    ("ghost", "X-Ghost-Signature", f"sha256={HEX64}"),
    ("ghost", "X-Ghost-Signature", f"t={MS}"),
    ("ghost", "X-Ghost-Signature", f"sha256={HEX64}, t=abc"),
    ("standard_webhooks", "webhook-signature", "garbage"),
    ("standard_webhooks", "webhook-signature", "v1,a,b"),
    ("standard_webhooks", "webhook-signature", "v1,"),
    ("standard_webhooks", "webhook-signature", ",abc"),
    ("standard_webhooks", "webhook-signature", "v1,!!!notbase64!!!"),
    ("standard_webhooks", "webhook-signature", f"v1,{B64} garbage"),
    ("payload", "webhook-signature", "v1,a,b"),
    ("github", "X-Hub-Signature-256", HEX64),
    ("github", "X-Hub-Signature-256", "sha256=xyz"),
    ("github", "X-Hub-Signature-256", f"sha1={'ab' * 20}"),
    ("shopify", "X-Shopify-Hmac-Sha256", "not base64!!"),
    ("shopify", "X-Shopify-Hmac-Sha256", "c2hvcnQ="),
    ("woocommerce", "X-WC-Webhook-Signature", HEX64),
    ("wordpress", "X-WP-Webhook-Signature", "===="),
    ("storyblok", "webhook-signature", "zz" * 20),
    ("storyblok", "webhook-signature", f"v1,{B64}"),
    ("webflow", "x-webflow-signature", "not-hex"),
    ("contentful", "x-contentful-signature", "G" * 64),
    ("generic_hmac", "X-Signature", "sha256=" + HEX64),
    ("generic_hmac", "X-Signature", "sha512=" + HEX64),
]


@pytest.mark.parametrize(("key", "header", "value"), MALFORMED)
def test_malformed_signature_header_is_400(key, header, value):
    """A signature header that breaks the provider's format is a 400, not a crash."""
    request = signed(key).with_header(header, value)
    with pytest.raises(VerificationError) as caught:
        request.verify()
    assert caught.value.status == 400
    assert caught.value.reason in ("malformed-signature", "malformed-timestamp")


@pytest.mark.parametrize(
    ("key", "header"),
    [
        ("standard_webhooks", "webhook-id"),
        ("standard_webhooks", "webhook-timestamp"),
        ("payload", "webhook-timestamp"),
        ("webflow", "x-webflow-timestamp"),
        ("contentful", "x-contentful-timestamp"),
        ("contentful", "x-contentful-signed-headers"),
        ("contentful", "X-Contentful-Topic"),
    ],
)
def test_missing_companion_header_is_400(key, header):
    """A signed request missing a header its signature depends on is malformed."""
    with pytest.raises(VerificationError) as caught:
        signed(key).without_header(header).verify()
    assert (caught.value.reason, caught.value.status) == ("missing-header", 400)


@pytest.mark.parametrize(
    ("key", "header"),
    [
        ("standard_webhooks", "webhook-timestamp"),
        ("webflow", "x-webflow-timestamp"),
        ("contentful", "x-contentful-timestamp"),
    ],
)
@pytest.mark.parametrize("value", ["abc", "", "1.5e12", " -5"])
def test_non_integer_timestamp_header_is_400(key, header, value):
    """A timestamp header that is not an integer is malformed."""
    with pytest.raises(VerificationError) as caught:
        signed(key).with_header(header, value).verify()
    assert caught.value.status == 400


def test_contentful_signed_headers_must_cover_the_timestamp():
    """A Contentful request whose signed-header list omits the timestamp is refused."""
    request = signed("contentful").with_header(
        "x-contentful-signed-headers", "x-contentful-signed-headers,x-contentful-topic"
    )
    with pytest.raises(VerificationError) as caught:
        request.verify()
    assert (caught.value.reason, caught.value.status) == ("missing-header", 400)


def test_oversized_signature_header_is_400():
    """A signature header far longer than any real one is refused before parsing."""
    request = signed("stripe").with_header("Stripe-Signature", f"t={S}," + "v1=ab," * 2000)
    with pytest.raises(VerificationError) as caught:
        request.verify()
    assert caught.value.status == 400


def test_only_asymmetric_items_do_not_verify():
    """A Standard Webhooks header with only `v1a` items has no usable signature: 401."""
    request = signed("standard_webhooks").with_header("webhook-signature", f"v1a,{B64}")
    with pytest.raises(VerificationError) as caught:
        request.verify()
    assert (caught.value.reason, caught.value.status) == ("bad-signature", 401)


def test_unknown_items_beside_a_valid_signature_are_skipped():
    """A `v1a` item next to a valid `v1` item does not stop verification."""
    request = signed("standard_webhooks")
    valid = request.header("webhook-signature")
    request.with_header("webhook-signature", f"v1a,{B64} {valid}").verify()


def test_stripe_ignores_v0_beside_v1():
    """Stripe's test-mode `v0` signature is ignored, not treated as malformed."""
    request = signed("stripe")
    value = request.header("stripe-signature")
    request.with_header("Stripe-Signature", f"{value},v0={HEX64}").verify()
