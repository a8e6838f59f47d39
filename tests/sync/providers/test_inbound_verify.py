"""Signature and token checks: each provider's valid sample, then one broken thing per test."""

from __future__ import annotations

import pytest

from bridge.sync.providers.errors import VerificationError
from bridge.sync.providers.generic import GenericConfig
from bridge.sync.providers.providers import PROVIDERS, with_token_header
from bridge.sync.providers.verify import verify
from tests.sync.providers.builders import SignedRequest, signed
from tests.sync.providers.samples import (
    GENERIC_A_CONFIG,
    GENERIC_B,
    GENERIC_B_CONFIG,
    NOW,
    STRIPE_SECRET,
    SW_SECRET,
    SW_SECRET_NEW,
)

ALL = sorted(PROVIDERS)
TOKEN = ["directus", "strapi"]
HMAC = [key for key in ALL if key not in TOKEN]
SIGNATURE_HEADER = {key: p.scheme.header for key, p in PROVIDERS.items() if p.scheme is not None}
SIGNATURE_HEADER["generic_hmac"] = GENERIC_A_CONFIG.header
# Replay windows from webhooks.md: (unit the sender writes, seconds accepted either way).
WINDOWS = {
    "contentful": 30,
    "sanity": 300,
    "ghost": 300,
    "webflow": 300,
    "stripe": 300,
    "standard_webhooks": 300,
    "payload": 300,
}


def reason(request: SignedRequest) -> tuple[str, int]:
    with pytest.raises(VerificationError) as caught:
        request.verify()
    return caught.value.reason, caught.value.status


@pytest.mark.parametrize("key", ALL)
def test_signed_sample_verifies(key):
    """Every provider's documented sample, signed as the provider signs it, verifies."""
    signed(key).verify()


@pytest.mark.parametrize("key", ALL)
def test_lower_case_header_names_still_verify(key):
    """Header lookup ignores case, as HTTP requires."""
    request = signed(key)
    request.but(headers={k.lower(): v for k, v in request.headers.items()}).verify()


@pytest.mark.parametrize("key", HMAC)
def test_one_flipped_body_bit_is_401(key):
    """Changing one bit of the raw body fails the signature."""
    assert reason(signed(key).tampered()) == ("bad-signature", 401)


@pytest.mark.parametrize("key", HMAC)
def test_missing_signature_header_is_401(key):
    """A request without the signature header is unauthenticated."""
    request = signed(key).without_header(SIGNATURE_HEADER[key])
    assert reason(request) == ("missing-signature", 401)


@pytest.mark.parametrize("key", TOKEN)
def test_missing_token_header_is_401(key):
    """A token source without its token header is unauthenticated."""
    request = signed(key).without_header(SIGNATURE_HEADER[key])
    assert reason(request) == ("missing-token", 401)


@pytest.mark.parametrize("key", HMAC)
def test_wrong_secret_is_401(key):
    """A signature made with another secret fails."""
    assert reason(signed(key, signing_secrets=["whsec_d3JvbmcgYnV0IHZhbGlkIGJhc2U2NA=="])) == (
        "bad-signature",
        401,
    )


@pytest.mark.parametrize("key", TOKEN)
def test_wrong_token_is_401(key):
    """A token that is not the configured one fails."""
    assert reason(signed(key, signing_secrets=["not-the-token"])) == ("bad-token", 401)


@pytest.mark.parametrize("key", ALL)
def test_no_configured_secret_is_401(key):
    """A source with no secret fails closed instead of accepting anything."""
    assert reason(signed(key).but(secrets=())) == ("no-secret", 401)


@pytest.mark.parametrize("key", sorted(WINDOWS))
@pytest.mark.parametrize("offset", [-360, 360])
def test_six_minutes_off_is_stale(key, offset):
    """A timestamp six minutes in the past or future is rejected in the provider's unit."""
    request = signed(key)
    assert reason(request.but(now=NOW + offset)) == ("stale", 401)


@pytest.mark.parametrize("key", sorted(WINDOWS))
@pytest.mark.parametrize("direction", [-1, 1])
def test_skew_inside_the_window_is_accepted(key, direction):
    """Clock skew inside the window (one minute; 20 s for Contentful's 30 s TTL) is accepted."""
    skew = min(60, WINDOWS[key] - 10)
    signed(key).but(now=NOW + direction * skew).verify()


@pytest.mark.parametrize("key", sorted(WINDOWS))
def test_window_edges_follow_the_documented_width(key):
    """Just inside the documented window verifies; just outside is stale."""
    request = signed(key)
    request.but(now=NOW + WINDOWS[key] - 1).verify()
    assert reason(request.but(now=NOW + WINDOWS[key] + 2)) == ("stale", 401)


@pytest.mark.parametrize("key", ["wordpress", "woocommerce", "shopify", "github", "storyblok"])
def test_unsigned_time_schemes_have_no_window(key):
    """Schemes that sign no timestamp cannot be stale (replays are caught by dedupe instead)."""
    signed(key).but(now=NOW + 86_400).verify()


def test_old_and_new_secrets_both_verify_during_rotation():
    """With old and new secrets configured, requests signed with either verify."""
    for signer in ("wp-old-secret", "wp-new-secret"):
        request = signed(
            "wordpress", signing_secrets=[signer], secrets=["wp-old-secret", "wp-new-secret"]
        )
        request.verify()


def test_rotation_overlap_ends_when_the_old_secret_is_dropped():
    """After the old secret is removed, requests signed with it fail."""
    request = signed("wordpress", signing_secrets=["wp-old-secret"], secrets=["wp-new-secret"])
    assert reason(request) == ("bad-signature", 401)


@pytest.mark.parametrize("key", ["standard_webhooks", "stripe"])
@pytest.mark.parametrize("kept", [0, 1])
def test_sender_signing_with_two_secrets_verifies_with_either(key, kept):
    """A sender rotating signs with both secrets; a receiver holding either one accepts."""
    pair = (
        [SW_SECRET, SW_SECRET_NEW] if key == "standard_webhooks" else [STRIPE_SECRET, "whsec_n3w"]
    )
    request = signed(key, signing_secrets=pair, secrets=[pair[kept]])
    value = request.header(SIGNATURE_HEADER[key])
    assert (value.count(",v1=") if key == "stripe" else len(value.split())) == 2
    request.verify()


def test_stripe_secret_on_standard_webhooks_fails():
    """A Stripe secret configured on a Standard Webhooks source does not verify its requests."""
    request = signed("standard_webhooks").but(secrets=(STRIPE_SECRET,))
    assert reason(request) == ("bad-signature", 401)


def test_standard_webhooks_secret_on_stripe_fails():
    """A Standard Webhooks secret configured on a Stripe source does not verify its requests."""
    request = signed("stripe").but(secrets=(SW_SECRET,))
    assert reason(request) == ("bad-signature", 401)


def test_storyblok_request_fails_the_standard_webhooks_verifier():
    """Storyblok's bare-hex `webhook-signature` never passes as Standard Webhooks."""
    request = signed("storyblok").but(provider=PROVIDERS["standard_webhooks"])
    assert reason(request)[1] in (400, 401)


def test_standard_webhooks_request_fails_the_storyblok_verifier():
    """A Standard Webhooks `webhook-signature` never passes as Storyblok's SHA-1 hex."""
    request = signed("standard_webhooks").but(provider=PROVIDERS["storyblok"])
    assert reason(request)[1] in (400, 401)


def test_generic_hmac_second_configuration_verifies():
    """A generic source with a timestamped base64 recipe verifies its own sample."""
    signed("generic_hmac", body=GENERIC_B, config=GENERIC_B_CONFIG).verify()


def test_generic_hmac_second_configuration_enforces_its_window():
    """The generic recipe's millisecond timestamp is held to its window."""
    request = signed("generic_hmac", body=GENERIC_B, config=GENERIC_B_CONFIG)
    assert reason(request.but(now=NOW + 360)) == ("stale", 401)


def test_generic_hmac_request_fails_under_the_other_configuration():
    """A request signed for one generic recipe fails under another source's recipe."""
    request = signed("generic_hmac").but(config=GENERIC_B_CONFIG)
    assert reason(request)[1] in (400, 401)


def test_generic_hmac_without_configuration_fails_closed():
    """A generic source missing its configuration rejects everything."""
    assert reason(signed("generic_hmac").but(config=None)) == ("not-configured", 401)


def test_generic_config_rejects_unknown_template_parts():
    """A content template naming an unknown part is refused when the source is configured."""
    with pytest.raises(ValueError, match="content"):
        GenericConfig(header="X-Sig", content="{secret}.{body}")


def test_generic_config_needs_a_timestamp_header_for_timestamp_templates():
    """A template using {timestamp} without a timestamp header is refused."""
    with pytest.raises(ValueError, match="timestamp_header"):
        GenericConfig(header="X-Sig", content="{timestamp}.{body}")


def test_strapi_accepts_bearer_in_any_case():
    """The `Bearer` scheme name is case-insensitive, as in RFC 9110."""
    request = signed("strapi")
    request.with_header("Authorization", "bearer strapi-token-0c3f9a").verify()


def test_strapi_token_without_bearer_is_400():
    """An Authorization header with another scheme is malformed, not a wrong token."""
    request = signed("strapi").with_header("Authorization", "Token strapi-token-0c3f9a")
    assert reason(request) == ("malformed-token", 400)


def test_token_sources_do_not_authenticate_the_body():
    """Static tokens prove the sender knows the token; the body itself is not covered."""
    signed("strapi").tampered().verify()


def test_directus_token_header_is_configurable():
    """A Directus Flow may send its token in a header the user chose."""
    provider = with_token_header(PROVIDERS["directus"], "X-Flow-Secret")
    request = signed("directus", provider=provider)
    assert "X-Flow-Secret" in request.headers
    request.verify()


def test_directus_default_header_is_ignored_once_another_is_configured():
    """With a custom header configured, the default header no longer authenticates."""
    request = signed("directus").but(provider=with_token_header(PROVIDERS["directus"], "X-Other"))
    assert reason(request) == ("missing-token", 401)


def test_token_header_cannot_be_set_on_hmac_providers():
    """Only static-token providers take a custom token header."""
    with pytest.raises(ValueError, match="static token"):
        with_token_header(PROVIDERS["github"], "X-Token")


def test_error_text_never_contains_secrets_or_signatures():
    """The error's text and repr are the reason slug only, safe for logs and responses."""
    request = signed("github", signing_secrets=["leaky-secret"])
    with pytest.raises(VerificationError) as caught:
        request.verify()
    shown = f"{caught.value} {caught.value!r}"
    assert "leaky" not in shown
    assert request.header("X-Hub-Signature-256").removeprefix("sha256=") not in shown


def test_verify_reads_the_raw_body_not_reserialised_json():
    """Re-serialising the WordPress body (PHP escapes) changes the bytes and fails."""
    import json

    request = signed("wordpress")
    reserialised = json.dumps(request.payload(), separators=(",", ":")).encode()
    assert reserialised != request.body
    assert reason(request.but(body=reserialised)) == ("bad-signature", 401)


def test_verify_is_a_function_of_its_arguments():
    """Verification uses the passed-in clock, so the same request passes then fails by `now`."""
    request = signed("stripe")
    verify(
        request.provider,
        request.secrets,
        request.body,
        request.headers,
        method="POST",
        path=request.path,
        now=NOW,
    )
    with pytest.raises(VerificationError):
        verify(
            request.provider,
            request.secrets,
            request.body,
            request.headers,
            method="POST",
            path=request.path,
            now=NOW + 3600,
        )
