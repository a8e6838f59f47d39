# ruff: noqa: E501  (bodies are single wire lines, byte for byte; wrapping would change them)
"""Realistic webhook bodies, exactly as each provider puts them on the wire, with their secrets.

Bodies are raw bytes: WordPress/WooCommerce keep PHP's `\\/` and `\\uXXXX` escapes, Stripe is
pretty-printed, Shopify's ids exceed 2**53. Shapes follow each provider's documentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.sync.providers.generic import FieldMap, GenericConfig

NOW = 1714557600.0  # 2024-05-01T10:00:00Z


@dataclass(frozen=True)
class Sample:
    body: bytes
    secret: str
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/inbound/src_8f3a"
    config: GenericConfig | None = None


WORDPRESS = rb"""{"post_id":42,"post":{"ID":42,"post_author":"1","post_date":"2024-05-01 12:00:00","post_date_gmt":"2024-05-01 10:00:00","post_content":"<!-- wp:paragraph -->\n<p>Caf\u00e9 menus &amp; opening hours<\/p>\n<!-- \/wp:paragraph -->\n\n<!-- wp:list -->\n<ul><li>Mon\u2013Fri<\/li><li>Sat<\/li><\/ul>\n<!-- \/wp:list -->","post_title":"Caf\u00e9 hours","post_excerpt":"","post_status":"publish","post_name":"cafe-hours","post_modified":"2024-05-01 11:59:00","post_modified_gmt":"2024-05-01 09:59:00","guid":"https:\/\/example.com\/?p=42","post_type":"post"},"post_meta":[],"post_permalink":"https:\/\/example.com\/cafe-hours\/"}"""

WOOCOMMERCE = rb"""{"id":799,"name":"Ship Your Idea","slug":"ship-your-idea","permalink":"https:\/\/shop.example.com\/product\/ship-your-idea\/","date_created":"2024-04-30T10:00:00","date_created_gmt":"2024-04-30T08:00:00","date_modified":"2024-05-01T11:59:00","date_modified_gmt":"2024-05-01T09:59:00","type":"simple","status":"publish","description":"<p>Pellentesque habitant morbi tristique.<\/p>\n","short_description":"<p>Short.<\/p>\n","sku":"SYI-1","price":"21.99"}"""

CONTENTFUL = rb"""{"metadata":{"tags":[]},"sys":{"type":"Entry","id":"5KsDBWseXY6QegucYAoacS","space":{"sys":{"type":"Link","linkType":"Space","id":"yadj1kx9rmg0"}},"environment":{"sys":{"id":"master","type":"Link","linkType":"Environment"}},"contentType":{"sys":{"type":"Link","linkType":"ContentType","id":"blogPost"}},"createdAt":"2024-04-30T08:00:00.000Z","updatedAt":"2024-05-01T09:59:30.123Z","revision":3,"version":12},"fields":{"title":{"en-US":"Hello, Rich Text"},"slug":{"en-US":"hello-rich-text"},"body":{"en-US":{"nodeType":"document","data":{},"content":[{"nodeType":"heading-2","data":{},"content":[{"nodeType":"text","value":"Intro","marks":[],"data":{}}]},{"nodeType":"paragraph","data":{},"content":[{"nodeType":"text","value":"Read the ","marks":[],"data":{}},{"nodeType":"hyperlink","data":{"uri":"https://example.com"},"content":[{"nodeType":"text","value":"docs","marks":[],"data":{}}]},{"nodeType":"text","value":" first.","marks":[{"type":"bold"}],"data":{}}]}]}}}}"""

CONTENTFUL_UNPUBLISH = rb"""{"sys":{"type":"DeletedEntry","id":"5KsDBWseXY6QegucYAoacS","space":{"sys":{"type":"Link","linkType":"Space","id":"yadj1kx9rmg0"}},"environment":{"sys":{"id":"master","type":"Link","linkType":"Environment"}},"contentType":{"sys":{"type":"Link","linkType":"ContentType","id":"blogPost"}},"revision":3,"createdAt":"2024-05-01T10:05:00.000Z","updatedAt":"2024-05-01T10:05:00.000Z","deletedAt":"2024-05-01T10:05:00.000Z"}}"""

STRAPI = rb"""{"event":"entry.publish","createdAt":"2024-05-01T10:00:00.000Z","model":"article","uid":"api::article.article","entry":{"id":7,"documentId":"h90lgohlzfpjf3bvan72mzll","title":"Blocks demo","slug":"blocks-demo","content":[{"type":"heading","level":2,"children":[{"type":"text","text":"Why"}]},{"type":"paragraph","children":[{"type":"text","text":"Because "},{"type":"link","url":"https://strapi.io","children":[{"type":"text","text":"Strapi"}]},{"type":"text","text":" said so.","bold":true}]},{"type":"list","format":"unordered","children":[{"type":"list-item","children":[{"type":"text","text":"one"}]},{"type":"list-item","children":[{"type":"text","text":"two"}]}]}],"createdAt":"2024-04-30T08:00:00.000Z","updatedAt":"2024-05-01T09:59:59.000Z","publishedAt":"2024-05-01T10:00:00.000Z","locale":"en"}}"""

SANITY = rb"""{"_id":"post-123","_type":"post","_rev":"Ab12Cd34Ef","_updatedAt":"2024-05-01T09:58:00Z","title":"Sanity post","text":"First block.\n\nSecond block.","url":"https://example.com/posts/sanity-post","slug":"sanity-post","operation":"update"}"""

GHOST = rb"""{"post":{"current":{"id":"6632f3b1e3c4a10001a1b2c3","uuid":"1b5d4c3e-8f4a-4f5e-9c1d-2a3b4c5d6e7f","title":"Ghost & friends","slug":"ghost-and-friends","html":"<p>Hello <strong>Ghost</strong></p>","plaintext":"Hello Ghost","status":"published","url":"https://blog.example.com/ghost-and-friends/","updated_at":"2024-05-01T09:59:00.000Z","published_at":"2024-05-01T09:59:00.000Z"},"previous":{"status":"draft","updated_at":"2024-05-01T09:00:00.000Z","published_at":null}}}"""

SHOPIFY = rb"""{"id":9007199254740993,"title":"Blue Shirt","body_html":"<p>Soft <em>cotton</em> shirt.</p>","vendor":"Acme","product_type":"Shirts","created_at":"2024-04-30T06:00:00-04:00","handle":"blue-shirt","updated_at":"2024-05-01T05:59:00-04:00","published_at":"2024-04-30T06:00:00-04:00","status":"active","admin_graphql_api_id":"gid://shopify/Product/9007199254740993","variants":[{"id":9007199254740995,"price":"19.00"}]}"""

WEBFLOW = rb"""{"triggerType":"collection_item_published","payload":{"items":[{"id":"6632f3b1e3c4a10001a1b2d4","siteId":"6632f3b1e3c4a10001a1b000","workspaceId":"6632f3b1e3c4a10001a1b001","collectionId":"6632f3b1e3c4a10001a1b002","cmsLocaleId":"6632f3b1e3c4a10001a1b003","lastPublished":"2024-05-01T09:59:50.000Z","lastUpdated":"2024-05-01T09:59:40.000Z","createdOn":"2024-04-30T08:00:00.000Z","isArchived":false,"isDraft":false,"fieldData":{"name":"Webflow item","slug":"webflow-item","post-body":"<h2>Title</h2><p>Body text.</p>"}}]}}"""

STORYBLOK = rb"""{"text":"The user someone@example.com published the Story Home (home)\nhttps://app.storyblok.com/#/me/spaces/606/stories/0/0/369689","action":"published","space_id":606,"story_id":369689,"full_slug":"home"}"""

DIRECTUS = rb"""{"event":"articles.items.update","payload":{"status":"published","title":"Directus title"},"keys":["15"],"collection":"articles"}"""

PAYLOAD = rb"""{"type":"document.published","timestamp":"2024-05-01T10:00:00.000Z","data":{"id":"6632f3b1e3c4a10001a1b2e5","collection":"posts","url":"https://example.com/posts/payload-post","doc":{"title":"Payload post","contentText":"Flattened Lexical text.","updatedAt":"2024-05-01T09:59:58.000Z","_status":"published"}}}"""

GITHUB = rb"""{"ref":"refs/heads/main","before":"0a1b2c3d4e5f60718293a4b5c6d7e8f901234567","after":"9f2c1e0d4b3a29384756e7d8c9b0a1f2e3d4c5b6","repository":{"id":123456,"full_name":"acme/docs","html_url":"https://github.com/acme/docs","default_branch":"main"},"commits":[{"id":"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678","timestamp":"2024-05-01T11:58:00+02:00","added":["guide/new.md"],"removed":[],"modified":["README.md"]},{"id":"9f2c1e0d4b3a29384756e7d8c9b0a1f2e3d4c5b6","timestamp":"2024-05-01T11:59:00+02:00","added":[],"removed":["guide/old.md"],"modified":["guide/new.md"]}],"head_commit":{"id":"9f2c1e0d4b3a29384756e7d8c9b0a1f2e3d4c5b6","timestamp":"2024-05-01T11:59:00+02:00","added":[],"removed":["guide/old.md"],"modified":["guide/new.md"]}}"""

STRIPE = b"""{
  "id": "evt_1PBf2kLkdIwHu7ix0TgBrl7q",
  "object": "event",
  "api_version": "2024-04-10",
  "created": 1714557590,
  "data": {
    "object": {
      "id": "prod_Q1a2B3c4D5e6F7",
      "object": "product",
      "active": true,
      "created": 1714471200,
      "description": "A very comfortable mug.",
      "livemode": false,
      "metadata": {},
      "name": "Mug",
      "updated": 1714557589,
      "url": "https://example.com/mug"
    },
    "previous_attributes": {
      "description": "A mug."
    }
  },
  "livemode": false,
  "pending_webhooks": 1,
  "request": {
    "id": "req_Xb2c3D4e5F6g7H",
    "idempotency_key": "6b4f7a4e-0d0c-4d6b-9a3e-1f2e3d4c5b6a"
  },
  "type": "product.updated"
}"""

STANDARD_WEBHOOKS = rb"""{"type":"article.updated","timestamp":"2024-05-01T10:00:00Z","data":{"id":"art_1","title":"SW article","text":"<p>Body <b>text</b></p>","url":"https://example.com/a/1","updated_at":"2024-05-01T09:59:00Z"}}"""

GENERIC_A = rb"""{"doc":{"uuid":"c0ffee00-0000-4000-8000-000000000001","headline":"Generic A","html":"<p>Alpha &amp; omega</p>","link":"https://cms.example.com/a","modified":1714557540}}"""

GENERIC_B = rb"""{"action":"save","data":{"attributes":{"item-id":"B-77","title":"Generic B","paragraphs":["One.","Two."],"changed_at":"2024-05-01T09:59:00+00:00"}}}"""

# A 64-character signing secret, as Contentful issues them.
CONTENTFUL_SECRET = "a3f1c9e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0"
# Stripe: `whsec_` + 32 alphanumerics, used whole. Standard Webhooks: `whsec_` + base64 of 32 bytes.
STRIPE_SECRET = "whsec_Fq8wKc2LmN4pR6sT8vX0zB2dF4hJ6kL8"
SW_SECRET = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
SW_SECRET_NEW = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM="

GENERIC_A_CONFIG = GenericConfig(
    header="X-Signature",
    algorithm="sha512",
    encoding="hex",
    prefix="sha512=",
    mapping=FieldMap(
        id="doc.uuid",
        title="doc.headline",
        text="doc.html",
        url="doc.link",
        updated="doc.modified",
        updated_unit="s",
        event="header:x-event",
        delete_events=("doc.removed",),
    ),
    dedupe=("header:x-delivery",),
)
GENERIC_B_CONFIG = GenericConfig(
    header="X-Sig",
    algorithm="sha256",
    encoding="base64",
    content="{timestamp}.{body}",
    timestamp_header="X-Timestamp",
    timestamp_unit="ms",
    window_s=300,
    mapping=FieldMap(
        id='data.attributes."item-id"',
        title="data.attributes.title",
        text="join(' ', data.attributes.paragraphs)",
        updated="data.attributes.changed_at",
        event="action",
        delete_events=("destroy",),
    ),
)

SAMPLES: dict[str, Sample] = {
    "wordpress": Sample(WORDPRESS, "wp-trigger-secret-1", {"X-WP-Webhook-Name": "post_update"}),
    "woocommerce": Sample(
        WOOCOMMERCE,
        "wc_secret_9b2f7c",
        {
            "X-WC-Webhook-Source": "https://shop.example.com/",
            "X-WC-Webhook-Topic": "product.updated",
            "X-WC-Webhook-Resource": "product",
            "X-WC-Webhook-Event": "updated",
            "X-WC-Webhook-ID": "12",
            "X-WC-Webhook-Delivery-ID": "b1f6c3b0a5d4e3f2a1b0c9d8e7f6a5b4",
        },
    ),
    "contentful": Sample(
        CONTENTFUL,
        CONTENTFUL_SECRET,
        {
            "Content-Type": "application/vnd.contentful.management.v1+json",
            "X-Contentful-Topic": "ContentManagement.Entry.publish",
            "X-Contentful-Webhook-Name": "Bridge",
            "X-Contentful-Idempotency-Key": "7a1c3f0e9d2b4c6a8e0f1a2b3c4d5e6f",
        },
        path="/inbound/src_8f3a?source=contentful&env=master",
    ),
    "strapi": Sample(STRAPI, "strapi-token-0c3f9a", {"X-Strapi-Event": "entry.publish"}),
    "sanity": Sample(
        SANITY,
        "sanity-secret-41b2",
        {
            "idempotency-key": "idem_01HX2Y3Z",
            "sanity-project-id": "abc123",
            "sanity-dataset": "production",
        },
    ),
    "ghost": Sample(
        GHOST,
        "ghost-secret-77aa",
        {"User-Agent": "Ghost/5.82.0 (https://github.com/TryGhost/Ghost)"},
    ),
    "shopify": Sample(
        SHOPIFY,
        "shpss_2f4a6c8e0b1d3f5a7c9e",
        {
            "X-Shopify-Topic": "products/update",
            "X-Shopify-Shop-Domain": "acme.myshopify.com",
            "X-Shopify-API-Version": "2024-04",
            "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            "X-Shopify-Event-Id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
            "X-Shopify-Triggered-At": "2024-05-01T09:59:01.123456Z",
        },
    ),
    "webflow": Sample(WEBFLOW, "wf_client_secret_5e6f"),
    "storyblok": Sample(STORYBLOK, "storyblok-secret-8d9e"),
    "directus": Sample(DIRECTUS, "directus-token-3c4d"),
    "payload": Sample(PAYLOAD, SW_SECRET),
    "github": Sample(
        GITHUB,
        "gh-webhook-secret-6a7b",
        {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
            "X-GitHub-Hook-ID": "292430182",
            "X-Hub-Signature": "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6",
            "User-Agent": "GitHub-Hookshot/044aadd",
        },
    ),
    "stripe": Sample(
        STRIPE, STRIPE_SECRET, {"User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}
    ),
    "standard_webhooks": Sample(STANDARD_WEBHOOKS, SW_SECRET),
    "generic_hmac": Sample(
        GENERIC_A,
        "generic-a-secret",
        {"X-Event": "doc.updated", "X-Delivery": "dlv_0001"},
        config=GENERIC_A_CONFIG,
    ),
}
