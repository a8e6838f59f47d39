"""Thin CMS payloads (Storyblok, Directus, GitHub): the worker fetches the content, then upserts.

A local CMS on 127.0.0.1 answers the three APIs' shapes (Storyblok's `{"story": ...}` CDN
answer, Directus's `{"data": ...}` item, GitHub's raw file) and records what it was asked; the
sources hold `credentials={"token", "base_url"}`, and `allow_private_targets` lets the SSRF
guard reach the loopback CMS. Webhooks are the providers' signed samples, posted over HTTP.
"""

from __future__ import annotations

import json
import time

import pytest

from bridge.infra.models import Source
from tests.sync.providers.builders import signed
from tests.sync.providers.samples import SAMPLES
from tests.sync_helpers import FAST, Bridge, local_cms, upstream_documents

STORY = "/v2/cdn/stories/369689"
STORY_ANSWER = {
    "story": {
        "id": 369689,
        "name": "Home",
        "full_slug": "home",
        "published_at": "2024-05-01T10:00:00.000Z",
        "content": {
            "_uid": "c1",
            "component": "page",
            "body": [
                {"_uid": "c2", "component": "teaser", "headline": "Welcome home"},
                {"_uid": "c3", "component": "text", "text": "<p>Fresh <b>bread</b> daily.</p>"},
            ],
        },
    }
}
ITEM = "/items/articles/15"
ITEM_ANSWER = {
    "data": {
        "id": 15,
        "status": "published",
        "title": "Opening hours",
        "body": "<p>We open at nine.</p>",
        "date_updated": "2024-05-01T09:59:00Z",
    }
}
README = "/repos/acme/docs/contents/README.md"
NEW_GUIDE = "/repos/acme/docs/contents/guide/new.md"
GITHUB_RAW = "application/vnd.github.raw+json; charset=utf-8"  # what api.github.com answers


@pytest.fixture
def cms():
    with local_cms() as running:
        yield running


@pytest.fixture
def bridge(make_app, seeded, sim_admin):
    sim_admin.settings(rate_limit_enabled=False)
    app = make_app(**FAST, allow_private_targets=True, sync_retry_schedule=(0.1, 0.1, 0.1))
    return Bridge(app, seeded["key"])


def thin_source(bridge, seeded, provider: str, credentials: dict | None):
    options = {"credentials": credentials} if credentials is not None else {}
    return bridge.create_source(
        seeded["datastores"][0]["id"], provider=provider, secret=SAMPLES[provider].secret, **options
    )


def send(bridge, source, provider: str, body: bytes | None = None) -> None:
    """POST the provider's signed sample (or `body`) to the source's inbound URL."""
    request = signed(provider, body=body, signed_at=time.time())
    answer = bridge.post(source, request.body, request.headers)
    assert answer.status_code == 202, answer.get_json()


def stored(sim_app, seeded, source) -> dict:
    return {
        key.split(":", 1)[1]: doc
        for key, doc in upstream_documents(sim_app, seeded["datastores"][0]["id"]).items()
        if key.startswith(source.id + ":")
    }


def story_body(story_id: int) -> bytes:
    payload = json.loads(SAMPLES["storyblok"].body)
    return json.dumps({**payload, "story_id": story_id}).encode()


def test_storyblok_story_is_fetched_with_the_token_and_upserted(bridge, seeded, sim_app, cms):
    """A published story is read from the CDN API at the source's base URL with its token."""
    cms.content[STORY] = STORY_ANSWER
    source = thin_source(bridge, seeded, "storyblok", {"token": "sb-cdn-7f3a", "base_url": cms.url})
    send(bridge, source, "storyblok")
    bridge.drain()
    (asked,) = cms.received
    assert (asked.path, asked.query["token"]) == (STORY, ["sb-cdn-7f3a"])
    doc = stored(sim_app, seeded, source)["369689"]
    assert doc.name == "Home"
    assert "Welcome home" in doc.text
    assert "Fresh bread daily." in doc.text
    assert bridge.row("369689").state == "delivered"


def test_directus_item_is_fetched_with_a_bearer_token(bridge, seeded, sim_app, cms):
    """A Directus update (changed fields only) is completed by reading the item."""
    cms.content[ITEM] = ITEM_ANSWER
    source = thin_source(bridge, seeded, "directus", {"token": "dx-read-91c2", "base_url": cms.url})
    send(bridge, source, "directus")
    bridge.drain()
    (asked,) = cms.received
    assert asked.path == ITEM
    assert asked.headers["authorization"] == "Bearer dx-read-91c2"
    doc = stored(sim_app, seeded, source)["articles:15"]
    assert doc.text == "We open at nine."
    assert doc.name == "Directus title"  # the webhook's own title wins over the fetched one


def test_github_files_are_fetched_raw_and_removed_files_deleted(bridge, seeded, sim_app, cms):
    """A push upserts each added or modified file's raw text, read with the token; Markdown
    stays as written (`List<String>` is not an HTML tag) though GitHub labels it `+json`."""
    cms.content[README] = (GITHUB_RAW, "# Docs\n\nUse `List<String>` for lists.")
    cms.content[NEW_GUIDE] = (GITHUB_RAW, "A new guide.")
    source = thin_source(bridge, seeded, "github", {"token": "ghp_test_5e6f", "base_url": cms.url})
    send(bridge, source, "github")
    bridge.drain()
    assert sorted(cms.paths()) == [README, NEW_GUIDE]
    assert {r.headers["authorization"] for r in cms.received} == {"Bearer ghp_test_5e6f"}
    assert {r.query["ref"][0] for r in cms.received} == {"9f2c1e0d4b3a29384756e7d8c9b0a1f2e3d4c5b6"}
    docs = stored(sim_app, seeded, source)
    assert {cms_id: doc.text for cms_id, doc in docs.items()} == {
        "acme/docs:README.md": "# Docs\nUse `List<String>` for lists.",
        "acme/docs:guide/new.md": "A new guide.",
    }
    # A raw file has no title: each document is named by its path in the repository.
    assert {cms_id: doc.name for cms_id, doc in docs.items()} == {
        "acme/docs:README.md": "README.md",
        "acme/docs:guide/new.md": "guide/new.md",
    }
    assert bridge.states() == {"delivered": 3}  # and the removed file's tombstone


def test_missing_credentials_dead_letter_with_a_clear_reason(bridge, seeded, sim_admin, cms):
    """Without credentials a thin document cannot be read: dead, saying which credential."""
    source = thin_source(bridge, seeded, "storyblok", None)
    sim_admin.clear_requests()
    send(bridge, source, "storyblok")
    bridge.drain()
    row = bridge.row("369689")
    assert row.state == "dead"
    assert "credential 'token'" in (row.last_error or "")
    assert cms.received == []
    assert [r for r in sim_admin.requests() if r["path"].endswith("/upsert")] == []
    events = bridge.client.get(f"/v1/sources/{source.id}/events", headers=bridge.headers())
    assert "credential 'token'" in events.get_json()[0]["documents"][0]["reason"]


def test_cms_503_is_retried_until_the_content_arrives(bridge, seeded, sim_app, cms):
    """Two 503s from the CMS are retried on the schedule; the third read succeeds."""
    cms.content[STORY] = STORY_ANSWER
    cms.faults[STORY] = [503, 503]
    source = thin_source(bridge, seeded, "storyblok", {"token": "t", "base_url": cms.url})
    send(bridge, source, "storyblok")
    bridge.drain()
    assert cms.paths() == [STORY] * 3
    assert bridge.row("369689").attempts == 2
    assert "Welcome home" in stored(sim_app, seeded, source)["369689"].text


def test_cms_404_dead_letters_only_that_document(bridge, seeded, sim_app, cms):
    """A story the CMS does not know is dead ("CMS answered 404"); the next story arrives."""
    cms.content["/v2/cdn/stories/2"] = STORY_ANSWER
    source = thin_source(bridge, seeded, "storyblok", {"token": "t", "base_url": cms.url})
    send(bridge, source, "storyblok", story_body(1))
    send(bridge, source, "storyblok", story_body(2))
    bridge.drain()
    assert bridge.row("1").state == "dead"
    assert bridge.row("1").last_error == "CMS answered 404"
    assert bridge.row("2").state == "delivered"
    assert list(stored(sim_app, seeded, source)) == ["2"]


def test_loopback_cms_is_refused_without_allow_private_targets(
    make_app, seeded, sim_admin, cms, resolver
):
    """The fetch goes through the SSRF guard too: a CMS name that resolved publicly when the
    source was made (creation refuses private ones) and to 127.0.0.1 since is refused."""
    cms.content[STORY] = STORY_ANSWER
    bridge = Bridge(make_app(**FAST), seeded["key"])
    resolver({"cms.rebind.test": ["93.184.216.34"]})  # no connection is made to it
    port = cms.url.rsplit(":", 1)[1]
    base_url = f"http://cms.rebind.test:{port}"
    source = thin_source(bridge, seeded, "storyblok", {"token": "t", "base_url": base_url})
    resolver({"cms.rebind.test": ["127.0.0.1"]})
    send(bridge, source, "storyblok")
    bridge.drain()
    assert cms.received == []
    row = bridge.row("369689")
    assert row.state == "dead"
    assert (row.last_error or "").startswith("CMS fetch refused")


def stored_before_the_check(bridge, source, base_url: str) -> None:
    """Rewrite a source's stored base URL, as rows made before creation checked it may hold."""
    box = bridge.runtime.box
    with bridge.runtime.sessions() as session:
        row = session.get(Source, source.id)
        blob = json.loads(box.decrypt(row.secrets_ciphertext))
        blob["credentials"]["base_url"] = base_url
        row.secrets_ciphertext = box.encrypt(json.dumps(blob))
        session.commit()


def test_malformed_base_url_dead_letters_instead_of_breaking_the_sync(bridge, seeded, sim_app, cms):
    """A base URL httpx cannot even parse fails its documents alone; other sources still sync."""
    broken = thin_source(bridge, seeded, "directus", {"token": "t", "base_url": cms.url})
    stored_before_the_check(bridge, broken, "http://exämple..com")  # creation refuses it now
    cms.content[STORY] = STORY_ANSWER
    working = thin_source(bridge, seeded, "storyblok", {"token": "t", "base_url": cms.url})
    send(bridge, broken, "directus")
    send(bridge, working, "storyblok")
    bridge.drain()
    assert bridge.row("articles:15").state == "dead"
    assert "malformed" in (bridge.row("articles:15").last_error or "")
    assert bridge.row("369689").state == "delivered"


@pytest.mark.parametrize(
    ("provider", "path", "cms_id"),
    [("storyblok", STORY, "369689"), ("directus", ITEM, "articles:15")],
    ids=["storyblok", "directus"],
)
def test_a_later_change_to_the_same_item_is_fetched_again(
    provider, path, cms_id, bridge, seeded, sim_app, cms
):
    """Publishing or updating the same item again later sends its new content."""
    cms.content[STORY] = STORY_ANSWER
    cms.content[ITEM] = ITEM_ANSWER
    source = thin_source(bridge, seeded, provider, {"token": "t", "base_url": cms.url})
    send(bridge, source, provider)
    bridge.drain()
    cms.content[path] = {"story": {"name": "Home", "content": {"text": "Changed later"}}}
    if provider == "directus":
        cms.content[path] = {"data": {"id": 15, "body": "Changed later"}}
    time.sleep(0.01)
    send(bridge, source, provider)
    bridge.drain()
    assert "Changed later" in stored(sim_app, seeded, source)[cms_id].text


@pytest.mark.parametrize("provider", ["storyblok", "directus"])
def test_a_repeated_thin_delivery_sends_the_document_once(provider, bridge, seeded, sim_admin, cms):
    """Storyblok and Directus give no delivery id or version to deduplicate by, so every
    delivery is recorded; repeats before the sync coalesce into one fetch, and repeats after it
    fetch the same content, which is not sent to ZappWay again."""
    cms.content[STORY] = STORY_ANSWER
    cms.content[ITEM] = ITEM_ANSWER
    source = thin_source(bridge, seeded, provider, {"token": "t", "base_url": cms.url})
    sim_admin.clear_requests()
    for _ in range(3):
        send(bridge, source, provider)
    bridge.drain()
    for _ in range(2):
        send(bridge, source, provider)
    bridge.drain()
    upserts = [r for r in sim_admin.requests() if r["path"].endswith("/upsert")]
    assert len(upserts) == 1
    assert len(bridge.events(source)) == 5
