"""Every supported CMS sender as one data record: signature scheme, dedupe, event and mapper.

Records follow webhooks.md tables 4a-4c. A source stores its provider key; the record,
not the request's headers, picks the verifier (Storyblok and Standard Webhooks both send
`webhook-signature`). Locations use `header:<name>` or JMESPath over the parsed body.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bridge.sync.providers.generic import FieldMap
from bridge.sync.providers.mappers.envelopes import map_payload, map_stripe
from bridge.sync.providers.mappers.fields import SANITY_FIELDS, STANDARD_WEBHOOKS_FIELDS, map_fields
from bridge.sync.providers.mappers.headless import map_contentful, map_ghost, map_strapi
from bridge.sync.providers.mappers.platforms import map_shopify, map_webflow
from bridge.sync.providers.mappers.thin import map_directus, map_github, map_storyblok
from bridge.sync.providers.mappers.wordpress import map_woocommerce, map_wordpress
from bridge.sync.providers.mapping import Change, Event
from bridge.sync.providers.schemes import (
    Algorithm,
    Encoding,
    HmacScheme,
    Scheme,
    Timestamp,
    TokenScheme,
)

Mapper = Callable[[Event], list[Change]]
Recipe = tuple[str, ...]


@dataclass(frozen=True)
class Provider:
    """A CMS sender: how it signs, how to dedupe its deliveries, and how to read its payloads.

    `scheme` None means the source supplies a `GenericConfig`. `fields` set means the
    payload is read through a field map that a source's config may replace. `token_instead`:
    a source may check a static token in a header instead of the signature, for versions of
    the sender whose signature cannot be verified (WP Webhooks Pro 5).
    """

    key: str
    label: str
    scheme: Scheme | None
    dedupe: tuple[Recipe, ...]
    event: str | tuple[str, ...] | None
    mapper: Mapper
    fields: FieldMap | None = None
    token_instead: bool = False


def _body(
    header: str, algorithm: Algorithm = "sha256", encoding: Encoding = "base64", prefix: str = ""
) -> HmacScheme:
    """An HMAC over the raw body alone, with no timestamp (so no replay window)."""
    return HmacScheme(header, algorithm, "utf8", "{body}", encoding, prefix=prefix)


_STANDARD_WEBHOOKS = HmacScheme(
    header="webhook-signature",
    algorithm="sha256",
    key="whsec-base64",
    content="{id}.{timestamp}.{body}",
    encoding="base64",
    format="items",
    sig_key="v1",
    timestamp=Timestamp("header", "webhook-timestamp", "s", 300),
    id_header="webhook-id",
)

# Storyblok and Directus send ids only: no delivery id, no version (the same story published
# twice sends the same body). Any key built from the body would drop a later, real change as
# a duplicate of the first. Each delivery is recorded instead; the worker fetches the current
# content, so a repeated delivery costs at most one more fetch, and an unchanged document is
# not sent to ZappWay again (`bridge.documents.service` compares content hashes).
_THIN_NO_DEDUPE: tuple[Recipe, ...] = ()

_RECORDS = (
    Provider(
        "wordpress",
        "WordPress (WP Webhooks)",
        _body("x-wp-webhook-signature"),
        # The status is part of the key: a post trashed or unpublished within the second of
        # its last save keeps the same modified time, and must not pass for a repeat.
        (
            ("post_id", "post.post_modified_gmt", "post.post_status", "header:x-wp-webhook-name"),
            ("post_id", "post.post_modified_gmt", "post.post_status"),
            ("post_id", "post.post_modified_gmt"),
        ),
        "header:x-wp-webhook-name",
        map_wordpress,
        # The free plugin (1.0.3 to 3.x) signs the body; Pro 5 signs the trigger's name and
        # creation date instead (the same for every request, with a date it never sends).
        token_instead=True,
    ),
    Provider(
        "woocommerce",
        "WooCommerce",
        _body("x-wc-webhook-signature"),
        (("header:x-wc-webhook-delivery-id",),),
        "header:x-wc-webhook-topic",
        map_woocommerce,
    ),
    Provider(
        "contentful",
        "Contentful",
        HmacScheme(
            header="x-contentful-signature",
            algorithm="sha256",
            key="utf8",
            content="{method}\n{path}\n{signed_headers}\n{body}",
            encoding="hex",
            timestamp=Timestamp("header", "x-contentful-timestamp", "ms", 30),
            signed_headers_header="x-contentful-signed-headers",
        ),
        (
            ("header:x-contentful-idempotency-key",),
            ("sys.id", "sys.version || sys.revision", "header:x-contentful-topic"),
        ),
        "header:x-contentful-topic",
        map_contentful,
    ),
    Provider(
        "strapi",
        "Strapi",
        TokenScheme("authorization", "Bearer "),
        (("uid || model", "entry.documentId || entry.id", "entry.updatedAt", "event"),),
        ("header:x-strapi-event", "event"),
        map_strapi,
    ),
    Provider(
        "sanity",
        "Sanity",
        HmacScheme(
            header="sanity-webhook-signature",
            algorithm="sha256",
            key="utf8",
            content="{timestamp}.{body}",
            encoding="base64url-nopad",
            format="kv",
            sig_key="v1",
            timestamp=Timestamp("signature", "t", "ms", 300),
        ),
        (("header:idempotency-key",), ("_id", "_rev")),
        "operation",
        map_fields,
        SANITY_FIELDS,
    ),
    Provider(
        "ghost",
        "Ghost",
        HmacScheme(
            header="x-ghost-signature",
            algorithm="sha256",
            key="utf8",
            content="{body}{timestamp}",  # no separator: Ghost appends the digits to the body
            encoding="hex",
            format="kv",
            sig_key="sha256",
            timestamp=Timestamp("signature", "t", "ms", 300),
            kv_separator=", ",
            stamp_first=False,
        ),
        (
            (
                "(post || page).current.id || (post || page).previous.id",
                "(post || page).current.updated_at || (post || page).previous.updated_at",
            ),
        ),
        None,
        map_ghost,
    ),
    Provider(
        "shopify",
        "Shopify",
        # No window: X-Shopify-Triggered-At is unsigned and retries keep it for hours, so
        # replays are left to the webhook-id dedupe and version ordering.
        _body("x-shopify-hmac-sha256"),
        (("header:x-shopify-webhook-id",), ("header:x-shopify-event-id",)),
        "header:x-shopify-topic",
        map_shopify,
    ),
    Provider(
        "webflow",
        "Webflow",
        HmacScheme(
            header="x-webflow-signature",
            algorithm="sha256",
            key="utf8",
            content="{timestamp}:{body}",
            encoding="hex",
            timestamp=Timestamp("header", "x-webflow-timestamp", "ms", 300),
        ),
        (
            ("triggerType", "payload.id", "payload.lastUpdated"),
            ("triggerType", "payload.items[*].[id, lastUpdated]"),
            ("triggerType", "payload.id", "header:x-webflow-timestamp"),
        ),
        "triggerType",
        map_webflow,
    ),
    Provider(
        "storyblok",
        "Storyblok",
        _body("webhook-signature", "sha1", "hex"),
        _THIN_NO_DEDUPE,
        "action",
        map_storyblok,
    ),
    Provider(
        "directus",
        "Directus (Flows)",
        TokenScheme("x-bridge-token"),
        _THIN_NO_DEDUPE,
        "event",
        map_directus,
    ),
    Provider(
        "payload",
        "Payload CMS",
        _STANDARD_WEBHOOKS,
        (("header:webhook-id",),),
        "type",
        map_payload,
    ),
    Provider(
        "github",
        "GitHub",
        _body("x-hub-signature-256", "sha256", "hex", "sha256="),
        (("header:x-github-delivery",),),
        "header:x-github-event",
        map_github,
    ),
    Provider(
        "stripe",
        "Stripe",
        HmacScheme(
            header="stripe-signature",
            algorithm="sha256",
            key="whole-string",
            content="{timestamp}.{body}",
            encoding="hex",
            format="kv",
            sig_key="v1",
            timestamp=Timestamp("signature", "t", "s", 300),
        ),
        (("id",),),
        "type",
        map_stripe,
    ),
    Provider(
        "standard_webhooks",
        "Standard Webhooks",
        _STANDARD_WEBHOOKS,
        (("header:webhook-id",),),
        "type",
        map_fields,
        STANDARD_WEBHOOKS_FIELDS,
    ),
    Provider("generic_hmac", "Generic HMAC", None, (), None, map_fields),
)

PROVIDERS: Mapping[str, Provider] = MappingProxyType({p.key: p for p in _RECORDS})


def with_token_header(provider: Provider, header: str, prefix: str = "") -> Provider:
    """Return a token provider reading its token from `header` (Directus Flows let users pick
    it; a WordPress site whose sender cannot sign the body adds one).

    Raises:
        ValueError: the provider neither uses a static token nor may use one instead.
    """
    if not isinstance(provider.scheme, TokenScheme) and not provider.token_instead:
        raise ValueError(f"{provider.key} does not use a static token")
    return dataclasses.replace(provider, scheme=TokenScheme(header, prefix))
