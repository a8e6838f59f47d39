"""How a person sets each provider up on the CMS side, as data: where the inbound URL and the
secret go, which events to enable, whose secret it is, the field map and how deletes are seen.

One record per key of `PROVIDERS` (a test checks both lists match). The console renders these
on the source pages; written guides can be generated from, or checked against, the same records.
No I/O, no markup: plain sentences, with `*...*` marking the CMS's own menu and field names.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Setup:
    """One provider's setup on the CMS side."""

    where: str  # where the URL (and the secret or token) are pasted
    events: tuple[str, ...]  # what to enable
    field_map: str
    deletes: str
    cms_made_key: bool = False  # the CMS makes the signing secret: the user pastes it here
    cms_key_help: str = ""  # where the CMS shows that secret
    credentials: str = ""  # thin payloads: the read credentials the worker needs
    options: str = ""  # what `config` / `mapping` describe for this provider, when it has them


_RECORDS: dict[str, Setup] = {
    "wordpress": Setup(
        where="*Settings > WP Webhooks > Send Data*: under each trigger below, *Add Webhook URL* "
        "with the inbound URL followed by / and the trigger's name (e.g. <inbound URL>/post_delete"
        "), and set that webhook's *Secret* to the source's secret (from version 2.0.1 the "
        "free plugin has no Secret field; with WP-CLI: wp option update "
        "wpwhpro_trigger_secret '<secret>'). The plugin names no event, so the URL's last "
        "segment tells the bridge which trigger fired.",
        events=(
            "Post created: <inbound URL>/post_create",
            "Post updated: <inbound URL>/post_update",
            "Post trashed: <inbound URL>/post_trash",
            "Post deleted: <inbound URL>/post_delete",
        ),
        field_map="id post_id, title post.post_title, text post.post_content (HTML removed), "
        "URL post_permalink, updated post.post_modified_gmt.",
        deletes="The /post_delete and /post_trash URLs delete; on any URL a post whose status is "
        "trash, draft, pending or private is removed.",
        options="WP Webhooks Pro 5 or later signs the trigger, not the body, so its signature "
        'cannot be checked: create the source with config {"token_header": "X-Bridge-Token"} '
        "and add that header, set to the source's secret, in the trigger's header mapping.",
    ),
    "woocommerce": Setup(
        where="*WooCommerce > Settings > Advanced > Webhooks > Add webhook*, one per topic: "
        "*Status* Active, *Delivery URL* the inbound URL, *Secret* the source's secret.",
        events=("Product created", "Product updated", "Product deleted", "Product restored"),
        field_map="id id, title name, text description (else short_description), URL "
        "permalink, updated date_modified_gmt; metadata sku, slug.",
        deletes="product.deleted deletes; a product updated to a status other than publish is "
        "removed.",
    ),
    "contentful": Setup(
        where="*Settings > Webhooks > Add Webhook*: *URL* POST and the inbound URL; *Triggers*: "
        "Select specific triggering events.",
        events=("Entry: Publish", "Entry: Unpublish", "Entry: Archive", "Entry: Delete"),
        field_map="id <space>:<environment>:<entry id>; title the first of title, name, "
        "headline; text the first of body, content, text, description; updated sys.updatedAt.",
        deletes="Entry.unpublish, Entry.archive and Entry.delete delete.",
        cms_made_key=True,
        cms_key_help="*Settings > Webhooks > Settings > Enable request verification* makes "
        "Contentful's signing secret: paste it here.",
    ),
    "strapi": Setup(
        where="*Settings > Webhooks > Create new webhook*: *Url* the inbound URL; *Headers*: "
        "Authorization = Bearer <the source's secret>.",
        events=(
            "Entry: Create",
            "Entry: Update",
            "Entry: Delete",
            "Entry: Publish",
            "Entry: Unpublish",
        ),
        field_map="id <uid>:<entry.documentId>; title the first of title, name, headline; text "
        "the first of body, content, text, description; updated entry.updatedAt.",
        deletes="entry.unpublish and entry.delete delete; draft saves are ignored.",
        options='Another header than Authorization: config {"token_header": "X-Bridge-Token", '
        '"token_prefix": ""}.',
    ),
    "sanity": Setup(
        where="*sanity.io/manage > your project > API > Webhooks > Create webhook*: *URL* the "
        "inbound URL, *HTTP method* POST, *Secret* the source's secret, and a *Projection* "
        'that includes _id, _rev, _updatedAt, title, "text": pt::text(body), '
        '"operation": delta::operation().',
        events=("Trigger on: Create", "Trigger on: Update", "Trigger on: Delete"),
        field_map="id _id, title title, text text (else body, Portable Text flattened, content "
        "or description), URL url, updated _updatedAt, event operation; drafts are ignored.",
        deletes="The projected operation is delete.",
        options='A mapping changes the fields read, e.g. {"text": "body"}.',
    ),
    "ghost": Setup(
        where="*Settings > Integrations > Add custom integration*, then *Add webhook* once per "
        "event, each with *Target URL* the inbound URL and *Secret* the source's secret.",
        events=("Post published", "Published post updated", "Post unpublished", "Post deleted"),
        field_map="id post.current.id, title current.title, text current.plaintext (else "
        "html), URL current.url, updated current.updated_at.",
        deletes="A post no longer published is removed; a deleted post is deleted.",
    ),
    "shopify": Setup(
        where="*Settings > Notifications > Webhooks > Create webhook*, once per event: *Format* "
        "JSON, *URL* the inbound URL, the newest API version.",
        events=("Product creation", "Product update", "Product deletion"),
        field_map="id id, title title, text body_html, URL https://<shop>/products/<handle>, "
        "updated updated_at; metadata handle, vendor, product_type.",
        deletes="products/delete deletes; a product no longer active or published is removed.",
        cms_made_key=True,
        cms_key_help="The same page shows 'Your webhooks will be signed with ...': paste that "
        "key here (an app's webhooks use the app's client secret).",
    ),
    "webflow": Setup(
        where="With your Webflow app's token, create one webhook per trigger type "
        "(POST /v2/sites/<site id>/webhooks) with url the inbound URL. Webhooks added in the "
        "site's dashboard are unsigned and refused.",
        events=(
            "collection_item_published",
            "collection_item_changed",
            "collection_item_unpublished",
            "collection_item_deleted",
        ),
        field_map="id payload.id, title fieldData.name, text the first rich-text field "
        "(post-body, body, content...), updated lastUpdated.",
        deletes="Unpublished, deleted and archived items are deleted.",
        cms_made_key=True,
        cms_key_help="Your Webflow app's client secret signs its webhooks: paste it here.",
    ),
    "storyblok": Setup(
        where="*Settings > Webhooks > New webhook*: *Endpoint URL* the inbound URL, *Webhook "
        "secret* the source's secret (paid plans; unsigned deliveries are refused).",
        events=("Story published", "Story unpublished", "Story deleted", "Story moved"),
        field_map="id story_id; title and text from the fetched story; metadata space_id, "
        "full_slug.",
        deletes="unpublished and deleted delete.",
        credentials="token (required): a public access token (*Settings > Access Tokens*); "
        "base_url (optional): another region's API, e.g. https://api-us.storyblok.com.",
    ),
    "directus": Setup(
        where="*Settings > Flows > Create Flow*: trigger Event Hook (Action, non-blocking), then "
        "a *Webhook / Request URL* operation: POST to the inbound URL with header "
        "X-Bridge-Token = the source's secret and body {{$trigger}}.",
        events=("items.create", "items.update", "items.delete"),
        field_map="id <collection>:<key>; title and text from the fetched item; its status "
        "field decides publishing.",
        deletes="items.delete deletes; an item updated to a status other than published is "
        "removed.",
        credentials="token (required): a static token of a user who can read the collection; "
        "base_url (required): your Directus address, e.g. https://cms.example.com.",
        options='Another header: config {"token_header": "..."}.',
    ),
    "payload": Setup(
        where="Payload has no webhook settings: add afterChange and afterDelete collection "
        "hooks that POST Standard Webhooks-signed events to the inbound URL with the "
        "source's whsec_ secret.",
        events=(
            "document.published",
            "document.updated",
            "document.unpublished",
            "document.deleted",
        ),
        field_map="id <data.collection>:<data.id>, title doc.title, text doc.contentText, URL "
        "data.url, updated doc.updatedAt.",
        deletes="document.unpublished and document.deleted delete; drafts are ignored.",
    ),
    "github": Setup(
        where="The repository's *Settings > Webhooks > Add webhook*: *Payload URL* the inbound "
        "URL, *Content type* application/json, *Secret* the source's secret.",
        events=("Just the push event",),
        field_map="id <owner>/<repo>:<path>, title the file's path, text the file at the pushed "
        "commit, URL its blob on the default branch; only pushes to the default branch count.",
        deletes="Files removed in the push are deleted.",
        credentials="token (required): a fine-grained token with Contents: Read; base_url "
        "(optional): GitHub Enterprise's API, e.g. https://github.example.com/api/v3.",
    ),
    "stripe": Setup(
        where="*Developers > Webhooks > Add endpoint*: *Endpoint URL* the inbound URL.",
        events=("product.created", "product.updated", "product.deleted"),
        field_map="id data.object.id, title name, text description, URL url, updated updated.",
        deletes="product.deleted deletes; a product updated to active: false is removed.",
        cms_made_key=True,
        cms_key_help="*Reveal* the endpoint's signing secret (whsec_...) and paste it here: "
        "create the source after the endpoint.",
    ),
    "standard_webhooks": Setup(
        where="Give the sender the inbound URL and the source's whsec_ secret.",
        events=(
            "Every event type whose documents you want (e.g. *.created, *.updated, *.deleted)",
        ),
        field_map="id data.id, title data.title, text data.text || data.body || data.content "
        "(else data.description), URL data.url, updated data.updated_at || timestamp, event "
        "type.",
        deletes="Events matching *.deleted, *.unpublished, *.archived.",
        options='A mapping changes the fields read, e.g. {"text": "data.body_text"}.',
    ),
    "generic_hmac": Setup(
        where="Give the sender the inbound URL and the source's secret; describe how it signs "
        "in config and where its fields are in mapping.",
        events=("Whatever the sender offers for publish, update and delete",),
        field_map="Yours: mapping names id, title, text, url, updated and event (JMESPath or "
        "header:<name>) and delete_events.",
        deletes="Events listed in mapping.delete_events.",
        options="config: header (required), algorithm sha1/sha256/sha512, encoding "
        "hex/base64/base64url-nopad, prefix, content such as {timestamp}.{body}, "
        'timestamp_header, timestamp_unit, window_s. mapping: {"id": "article.id", ...}.',
    ),
}
SETUPS = MappingProxyType(_RECORDS)
