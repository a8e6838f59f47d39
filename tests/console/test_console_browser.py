"""The console in a real headless Chromium (Playwright, Debian's chromium), against the bridge
under gunicorn with its worker and the simulator on real sockets.

The tests run in order and share one browser session, as a person would: the operator signs in
with the admin token, creates a connection and copies its token, sets up a WordPress source and
sends it a signed webhook, watches the document arrive, replays one the simulator refused,
subscribes a hook that fails, signs in with the connection's own token, revokes it. Each page is
screenshotted at desktop width and 375 px and checked with axe-core (no serious or critical
violations). Slow: gunicorn, a worker and a browser start once for the module.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import sim
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.signing import sign
from sim.testing import SimAdmin, serve_in_thread
from tests.console.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    Bridge,
    Pages,
    bridge_stack,
    require_browser,
)
from tests.receivers import Receiver

pytestmark = pytest.mark.slow
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The simulator (seeded), a hook receiver that answers 500, and the bridge with its worker."""
    require_browser()
    sim_app = sim.create_app({"profile": "documented", "seed": 1})
    with serve_in_thread(sim_app) as sim_base:
        admin = SimAdmin(sim_base)
        seeded = admin.seed()
        receiver = Receiver(then=500).start()
        try:
            with bridge_stack(tmp_path_factory.mktemp("console"), sim_base) as bridge:
                yield {"bridge": bridge, "sim": admin, "seeded": seeded, "receiver": receiver,
                       "state": {}}  # fmt: skip
        finally:
            receiver.close()


@pytest.fixture(scope="module")
def pages(stack: dict[str, Any]) -> Iterator[Pages]:
    """One Chromium page (clipboard allowed, CSP bypassed only so axe-core can be injected)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
        origin = stack["bridge"].base
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        try:
            yield Pages(page)
        finally:
            context.close()
            browser.close()


def bridge_of(stack: dict[str, Any]) -> Bridge:
    bridge: Bridge = stack["bridge"]
    return bridge


def wait_for_text(pages: Pages, selector: str, pattern: str, timeout_s: float = 30) -> str:
    """Wait until the element's text matches (the events list refreshes itself every 5 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = pages.page.locator(selector).inner_text()
        if re.search(pattern, text):
            return text
        assert time.monotonic() < deadline, f"{pattern!r} never appeared in {selector}: {text}"
        time.sleep(0.5)


def sign_in(pages: Pages, base: str, token: str) -> None:
    """Sign in by keyboard: Tab to the token field, type, Enter."""
    page = pages.page
    page.goto(f"{base}/console/sign-in")
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == "token":
            break
    assert page.evaluate("document.activeElement.id") == "token", "the token field takes focus"
    page.keyboard.type(token)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def go(pages: Pages, action: Any) -> Any:
    """Do what submits a form or follows a link, and wait for the page it leads to."""
    with pages.page.expect_navigation() as navigation:
        action()
    return navigation.value


def send_wordpress(inbound_url: str, secret: str, post_id: int, title: str) -> httpx.Response:
    """POST a WordPress (WP Webhooks) post_update, signed as the plugin signs it."""
    body = json.dumps({
        "post_id": post_id,
        "post": {"ID": post_id, "post_title": title, "post_status": "publish",
                 "post_content": f"<p>{title}: the text.</p>", "post_type": "post",
                 "post_modified_gmt": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())},
        "post_permalink": f"https://example.com/{post_id}/",
    }).encode()  # fmt: skip
    path = "/" + inbound_url.split("/", 3)[3]
    headers = sign(PROVIDERS["wordpress"], secret, body, now=time.time(), path=path,
                   headers={"Content-Type": "application/json",
                            "X-WP-Webhook-Name": "post_update"})  # fmt: skip
    return httpx.post(inbound_url, content=body, headers=headers, timeout=10)


def test_first_run_page_says_how_to_sign_in(stack, pages):
    """A fresh deploy's console shows where the admin token is and what to do first."""
    base = bridge_of(stack).base
    pages.page.goto(f"{base}/console")
    assert pages.page.url == f"{base}/console/sign-in"
    text = pages.page.locator("main").inner_text()
    assert "heroku config:get BRIDGE_ADMIN_TOKEN" in text
    assert "create a connection" in text
    pages.check("sign-in")


def test_admin_signs_in_creates_a_connection_and_copies_its_token(stack, pages):
    """The admin token signs in; a new connection's token is shown once and the copy button
    puts exactly it on the clipboard; the API accepts it."""
    bridge, page = bridge_of(stack), pages.page
    sign_in(pages, bridge.base, bridge.admin_token)
    assert page.url == f"{bridge.base}/console/connections"
    cookie = next(c for c in page.context.cookies() if c["name"] == "zwb_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"
    pages.check("connections-empty")
    page.get_by_label("ZappWay API key").fill(stack["seeded"]["key"])
    page.get_by_label("Label").fill("Browser Zaps")
    go(pages, page.get_by_role("button", name="Create the connection").click)
    heading = page.get_by_role("heading", level=1).inner_text()
    assert heading == "Connection “Browser Zaps” created", page.locator("main").inner_text()
    page.get_by_role("button", name="Copy Connection token").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.locator("#token").input_value()
    assert copied.startswith("zwb_")
    pages.check("connection-created")
    me = httpx.get(f"{bridge.base}/v1/me", headers={"Authorization": f"Bearer {copied}"})
    assert me.status_code == 200
    stack["state"].update(token=copied, connection_id=me.json()["id"])
    go(pages, page.get_by_role("link", name="Go to the connection").click)
    assert copied not in page.content()  # never rendered again
    pages.check("connection")


def test_wordpress_source_receives_a_signed_webhook_and_the_document_is_delivered(stack, pages):
    """A WordPress source made in the console shows its URL and secret once with the provider's
    steps; a signed webhook to it appears as an accepted event whose document is delivered."""
    bridge, page, state = bridge_of(stack), pages.page, stack["state"]
    page.goto(f"{bridge.base}/console/connections/{state['connection_id']}/sources")
    pages.check("sources-empty")
    page.get_by_label("CMS").select_option("wordpress")
    go(pages, page.get_by_role("button", name="Next: its settings").click)
    assert "Post updated: <inbound URL>/post_update" in page.locator("main").inner_text()
    pages.check("source-new")
    go(pages, page.get_by_role("button", name="Create the source").click)
    inbound_url = page.locator("#inbound_url").input_value()
    secret = page.locator("#secret").input_value()
    assert inbound_url.startswith(f"{bridge.base}/in/") and secret
    assert "Settings > WP Webhooks > Send Data" in page.locator("main").inner_text()
    pages.check("source-created")
    go(pages, page.get_by_role("link", name="Go to the source and watch its events").click)
    assert secret not in page.content()
    assert send_wordpress(inbound_url, secret, 101, "Opening hours").status_code == 202
    text = wait_for_text(pages, "#events", r"delivered as")  # the live refresh brings it in
    assert "accepted" in text and "101" in text
    pages.check("source")
    state.update(inbound_url=inbound_url, secret=secret, source_url=page.url)


def test_a_document_the_simulator_refuses_is_replayed_from_the_page(stack, pages):
    """A document ZappWay refuses (422) shows as dead with the reason; once ZappWay accepts
    again, Replay on the page sends it and it shows delivered."""
    page, state, admin = pages.page, stack["state"], stack["sim"]
    fault = admin.add_fault("status", path=r"/datastores/.+/upsert", status=422)
    assert send_wordpress(state["inbound_url"], state["secret"], 102, "Refused").status_code == 202
    wait_for_text(pages, "#events", r"102 upsert: dead")
    assert fault
    admin.clear_faults()
    page.goto(state["source_url"])
    go(pages, page.get_by_role("button", name="Replay dead documents").click)
    assert "Dead documents queued again: 1." in page.locator(".notice").inner_text()
    wait_for_text(pages, "#events", r"102 upsert: delivered")
    pages.check("source-replayed")


def test_a_subscribed_hook_shows_a_failing_delivery_with_its_reason(stack, pages):
    """A hook subscribed in the console whose target answers 500 shows as failing, with each
    attempt's status, once a new conversation is delivered to it."""
    bridge, page, state = bridge_of(stack), pages.page, stack["state"]
    receiver, admin, seeded = stack["receiver"], stack["sim"], stack["seeded"]
    page.goto(f"{bridge.base}/console/connections/{state['connection_id']}/hooks")
    pages.check("hooks-empty")
    agent = seeded["agents"][0]["id"]
    page.get_by_label("Target URL").fill(receiver.url + "/zap")
    page.get_by_label("Agent").select_option(agent)
    go(pages, page.get_by_role("button", name="Subscribe").click)
    assert page.locator("#secret").input_value().startswith("whsec_")
    pages.check("hook-created")
    go(pages, page.get_by_role("link", name="Continue").click)
    hook_url = page.url
    deadline = time.monotonic() + 60
    while not receiver.received:  # the first poll seeds the past: keep starting conversations
        assert time.monotonic() < deadline, "no delivery reached the receiver"
        admin.create_conversation(agent)
        time.sleep(2)
    deadline = time.monotonic() + 30
    while True:
        page.goto(hook_url)
        text = page.locator("main").inner_text()
        if "failing" in text and "500" in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(1)
    assert "the target answered 500" in text
    pages.check("hook-failing")
    page.goto(f"{bridge.base}/console/connections/{state['connection_id']}/hooks")
    assert "failing" in page.locator("table").inner_text()
    pages.check("hooks")


def test_the_connection_page_shows_its_requests_recorded_under_gunicorn(stack, pages):
    """The API calls and webhooks of the flow so far show in the connection's recent requests
    (written by each gunicorn worker's batch writer), inbound URLs with their token hidden."""
    bridge, page, state = bridge_of(stack), pages.page, stack["state"]
    deadline = time.monotonic() + 30
    while True:
        page.goto(f"{bridge.base}/console/connections/{state['connection_id']}")
        recent = page.locator("section[aria-labelledby=activity]").inner_text()
        if "GET /v1/me" in recent and "POST /in/<redacted>" in recent:
            break
        assert time.monotonic() < deadline, recent
        time.sleep(1)
    assert state["inbound_url"].rsplit("/", 1)[-1] not in page.content()
    assert page.locator("svg[role=img]").count() == 1
    pages.check("connection-activity")


def test_a_connection_token_signs_in_to_its_own_connection_only(stack, pages):
    """Signed in with a connection's token, the console lists that connection alone and
    answers 404 for another connection's pages."""
    bridge, page, state = bridge_of(stack), pages.page, stack["state"]
    other = httpx.post(f"{bridge.base}/v1/connections", json={"api_key": stack["seeded"]["key"],
                       "label": "Someone else"}, timeout=10)  # fmt: skip
    assert other.status_code == 201
    go(pages, page.get_by_role("button", name=re.compile("Sign out")).click)
    assert "Signed out." in page.locator(".notice").inner_text()
    sign_in(pages, bridge.base, state["token"])
    assert page.url.endswith(f"/console/connections/{state['connection_id']}")
    page.goto(f"{bridge.base}/console/connections")
    listed = page.locator("tbody").inner_text()
    assert "Browser Zaps" in listed and "Someone else" not in listed
    pages.check("connections-as-connection")
    answer = page.goto(f"{bridge.base}/console/connections/{other.json()['id']}")
    assert answer is not None and answer.status == 404
    pages.check("not-found")


def test_a_form_posted_without_its_csrf_token_is_refused(stack, pages):
    """A form whose CSRF field was removed is refused with 400 and changes nothing."""
    bridge, page, state = bridge_of(stack), pages.page, stack["state"]
    page.goto(f"{bridge.base}/console/connections/{state['connection_id']}")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Issue a new token").click()
    assert navigation.value is not None and navigation.value.status == 400
    assert "did not come from this console session" in page.locator("main").inner_text()
    pages.check("csrf-refused")
    me = httpx.get(f"{bridge.base}/v1/me", headers={"Authorization": f"Bearer {state['token']}"})
    assert me.status_code == 200  # the token was not rotated


def test_revoking_behind_a_confirmation_makes_the_next_api_call_401(stack, pages):
    """Revoke asks for confirmation; once confirmed, the connection's next API call is a 401
    and its console session ends."""
    bridge, page, state = bridge_of(stack), pages.page, stack["state"]
    page.goto(f"{bridge.base}/console/connections/{state['connection_id']}")
    go(pages, page.get_by_role("link", name="Revoke…").click)
    pages.check("revoke-confirm")
    page.get_by_role("button", name="Revoke this connection").focus()
    go(pages, lambda: page.keyboard.press("Enter"))
    assert page.url.startswith(f"{bridge.base}/console/sign-in")
    me = httpx.get(f"{bridge.base}/v1/me", headers={"Authorization": f"Bearer {state['token']}"})
    assert me.status_code == 401
    assert me.json()["error"]["code"] == "revoked_credentials"
    pages.check("signed-out-after-revoke")


def test_every_page_was_screenshotted_at_both_widths(stack, pages):
    """Each page of the flow left a desktop and a 375 px screenshot behind."""
    from tests.console.browser import OUTPUT

    assert len(pages.seen) >= 15
    for name in pages.seen:
        for width in ("desktop", "375"):
            assert Path(OUTPUT / f"{name}-{width}.png").stat().st_size > 1000
