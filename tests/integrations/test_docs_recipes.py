"""Every recipe in docs/ runs: shell commands against a live bridge, and the signature snippets
(Python, Node, Code by Zapier, n8n Code node) on real deliveries and callbacks from it.

A code block in docs/ is preceded by `<!-- recipe: NAME -->` (run here) or
`<!-- not run: REASON -->` (it needs the platform itself); a block with neither fails.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integrations.live import ROOT, LiveBridge, live_bridge, need_node
from tests.receivers import receiver

DOCS = ROOT / "docs"
MARKER = re.compile(r"<!-- (recipe|not run): ?(.*?) -->")
DUMMY_SECRETS = {
    "CONTENTFUL_SIGNING_SECRET": "c" * 64,
    "SHOPIFY_WEBHOOK_KEY": "shpss_0123456789abcdef0123456789abcdef",
    "WEBFLOW_CLIENT_SECRET": "webflow-client-secret-0123456789",
    "STORYBLOK_PUBLIC_TOKEN": "storyblok-public-token",
    "DIRECTUS_STATIC_TOKEN": "directus-static-token",
    "DIRECTUS_URL": "http://127.0.0.1:8055",  # loopback: its check at creation asks no DNS
    "GITHUB_TOKEN": "github_pat_0123456789",
    "STRIPE_WEBHOOK_SECRET": "whsec_stripe0123456789abcdef",
}


@dataclass(frozen=True)
class Block:
    doc: str
    kind: str  # "recipe" or "not run"
    name: str
    lang: str
    code: str


def blocks() -> list[Block]:
    """Every fenced block of docs/*.md with the marker on the line before it."""
    found = []
    for path in sorted(DOCS.glob("*.md")):
        lines = path.read_text().splitlines()
        index = 0
        while index < len(lines):
            line = lines[index]
            if line.startswith("```"):
                end = lines.index("```", index + 1)
                previous = lines[index - 1] if index else ""
                marker = MARKER.fullmatch(previous.strip())
                kind, name = marker.groups() if marker else ("missing", f"{path.name}:{index + 1}")
                code = "\n".join(lines[index + 1 : end])
                found.append(Block(path.name, kind, name, line[3:].strip(), code))
                index = end
            index += 1
    return found


RECIPES = {b.name: b for b in blocks() if b.kind == "recipe"}


def test_every_block_is_a_recipe_or_says_why_not():
    """No code block in docs/ is left unaccounted: each is run here or says why it cannot be."""
    unmarked = [b.name for b in blocks() if b.kind == "missing"]
    assert not unmarked, f"code blocks without a recipe or not-run marker: {unmarked}"
    names = [b.name for b in blocks() if b.kind == "recipe"]
    assert len(names) == len(set(names)), "recipe names must be unique"
    reasons = [b for b in blocks() if b.kind == "not run" and not b.name]
    assert not reasons, "a not-run marker must say why"


def test_every_recipe_has_a_runner():
    """Each recipe in docs/ is run by one of the tests below (none is silently skipped)."""
    assert set(RECIPES) == set(RUNNERS), set(RECIPES) ^ set(RUNNERS)


@dataclass
class Delivery:
    secret: str
    headers: dict[str, str]
    body: bytes
    item_id: str


@pytest.fixture(scope="module")
def bridge(tmp_path_factory) -> Iterator[LiveBridge]:
    with live_bridge(tmp_path_factory.mktemp("docs")) as live:
        yield live


def api(bridge: LiveBridge, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{bridge.url}{path}", headers=bridge.headers(), **kwargs)


@pytest.fixture(scope="module")
def hook_delivery(bridge) -> Iterator[Delivery]:
    """A real hook delivery: a receiver subscribed, then a new conversation."""
    with receiver() as rec:
        hook = api(
            bridge, "POST", "/v1/hooks", json={"target_url": rec.url, "agent_id": bridge.agent}
        )
        assert hook.status_code == 201, hook.text
        created = bridge.sim.create_conversation(
            bridge.agent, messages=[{"from": "human", "text": "Docs test"}]
        )
        (arrived,) = rec.wait_for(1, timeout=20)
        api(bridge, "DELETE", f"/v1/hooks/{hook.json()['id']}")
    yield Delivery(hook.json()["secret"], arrived.headers, arrived.body, created["id"])


@pytest.fixture(scope="module")
def callback_delivery(bridge) -> Iterator[Delivery]:
    """A real job callback, signed with the connection's signing secret."""
    with receiver() as rec:
        body = {"agent_id": bridge.agent, "query": "Later please", "callback_url": rec.url}
        started = api(bridge, "POST", "/v1/actions/query_agent", json=body)
        assert started.status_code == 202, started.text
        (arrived,) = rec.wait_for(1, timeout=20)
    yield Delivery(bridge.signing_secret, arrived.headers, arrived.body, started.json()["job_id"])


def shell(bridge: LiveBridge, name: str, **env: str) -> str:
    variables = {
        "PATH": "/usr/bin:/bin", "BRIDGE": bridge.url, "TOKEN": bridge.token,
        "ZAPPWAY_API_KEY": bridge.seeded["key"], "AGENT_ID": bridge.agent,
        "DATASTORE_ID": bridge.datastore, **DUMMY_SECRETS, **env,
    }  # fmt: skip
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", RECIPES[name].code],
        env=variables, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def json_values(text: str) -> list[Any]:
    """Every JSON value printed one after another (curl prints answers back to back)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text.strip()):
        while text[at].isspace():
            at += 1
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        if at >= len(text.rstrip()):
            break
    return values


def node(code: str) -> str:
    node_bin, _ = need_node()
    done = subprocess.run([node_bin, "-e", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def forged(delivery: Delivery) -> bytes:
    return delivery.body.replace(b'"', b"'", 1) + b" "


# --- shell recipes ------------------------------------------------------------------------------


def run_create_connection(bridge, _deliveries):
    (created,) = json_values(shell(bridge, "create-connection"))
    assert created["token"].startswith("zwb_")
    assert created["signing_secret"].startswith("whsec_")


def run_auth_test(bridge, _deliveries):
    (me,) = json_values(shell(bridge, "auth-test"))
    assert me["organization"]["id"] == bridge.seeded["org"]["id"]


def run_list_dropdowns(bridge, _deliveries):
    agents, datastores = json_values(shell(bridge, "list-dropdowns"))
    assert {"id": bridge.agent, "name": "Support Agent"} in agents
    assert {"label": "Help Center", "value": bridge.datastore} in datastores


def run_query_agent_action(name):
    def run(bridge, _deliveries):
        (answer,) = json_values(shell(bridge, name))
        assert answer["status"] == "answered"
        again = json_values(shell(bridge, name))[0]  # the Idempotency-Key replays it
        assert again == answer

    return run


def run_job_status(bridge, deliveries):
    job_id = deliveries["callback"].item_id
    (job,) = json_values(shell(bridge, "make-job-status", JOB_ID=job_id))
    assert job["job_id"] == job_id
    assert job["status"] == "succeeded"


def run_subscribe(name):
    def run(bridge, _deliveries):
        with receiver() as rec:
            (hook,) = json_values(shell(bridge, name, HOOK_URL=rec.url))
            assert hook["secret"].startswith("whsec_")
            assert hook["target_url"] == rec.url
            assert hook["agent_id"] == bridge.agent
            api(bridge, "DELETE", f"/v1/hooks/{hook['id']}")

    return run


def run_unsubscribe(bridge, _deliveries):
    hook = api(
        bridge, "POST", "/v1/hooks", json={"url": "http://127.0.0.1:9/x", "agent_id": bridge.agent}
    )
    assert shell(bridge, "zapier-unsubscribe", HOOK_ID=hook.json()["id"]).strip() == "204"
    assert api(bridge, "GET", f"/v1/hooks/{hook.json()['id']}").status_code == 404


def run_search_action(bridge, _deliveries):
    (found,) = json_values(shell(bridge, "n8n-http-action"))
    assert isinstance(found, list)
    assert found


def run_upsert_action(bridge, _deliveries):
    (upserted,) = json_values(shell(bridge, "pipedream-http-action"))
    assert upserted["documents"][0]["id"] == "faq-gift-cards"


def run_delete_action(bridge, _deliveries):
    document = {"id": "faq-gift-cards", "text": "Gift cards never expire."}
    api(bridge, "POST", "/v1/actions/upsert_document",
        json={"datastore_id": bridge.datastore, "document": document})  # fmt: skip
    (deleted,) = json_values(shell(bridge, "activepieces-http-action"))
    assert deleted["deleted"] is True


def create_source(bridge: LiveBridge, name: str) -> dict[str, Any]:
    (source,) = json_values(shell(bridge, name))
    assert source["inbound_url"].startswith(f"{bridge.url}/in/"), source
    assert source["secret"]
    return dict(source)


def run_source(name):
    def run(bridge, _deliveries):
        create_source(bridge, name)

    return run


def run_events(bridge, _deliveries):
    source = create_source(bridge, "cms-ghost")
    (events,) = json_values(shell(bridge, "cms-events", SOURCE_ID=source["id"]))
    assert events == []


def run_generic_send(bridge, _deliveries):
    source = create_source(bridge, "cms-generic")
    env = {"SOURCE_SECRET": source["secret"], "INBOUND_URL": source["inbound_url"]}
    (answer,) = json_values(shell(bridge, "cms-generic-send", **env))
    assert answer["status"] == "accepted"
    assert answer["changes"] == 1


def run_payload_hook(bridge, _deliveries):
    source = create_source(bridge, "cms-payload")
    script = (
        RECIPES["cms-payload-hook"].code
        + f"""
process.env.ZAPPWAY_INBOUND_URL = {json.dumps(source["inbound_url"])};
process.env.ZAPPWAY_INBOUND_SECRET = {json.dumps(source["secret"])};
const doc = {{ id: 7, title: 'Hello', contentText: 'Payload body.', _status: 'published',
  updatedAt: new Date().toISOString() }};
afterChange({{ doc, previousDoc: null, collection: {{ slug: 'posts' }} }})
  .then(() => afterDelete({{ doc, collection: {{ slug: 'posts' }} }}))
  .then(() => console.log('sent'));
"""
    )
    assert node(script).strip() == "sent"
    events = api(bridge, "GET", f"/v1/sources/{source['id']}/events").json()
    assert [e["status"] for e in events] == ["accepted", "accepted"]
    assert [e["documents"][0]["op"] for e in events] == ["delete", "upsert"]


# --- signature snippets -------------------------------------------------------------------------


def run_verify_python(name):
    def run(_bridge, deliveries):
        namespace: dict[str, Any] = {}
        exec(RECIPES[name].code, namespace)  # noqa: S102  # the documented snippet itself
        verify = namespace["verify_delivery"]
        for delivery in deliveries.values():
            verified = verify(delivery.secret, delivery.headers, delivery.body)
            parsed = verified if isinstance(verified, dict) else json.loads(verified)
            assert delivery.item_id in (parsed.get("id"), parsed.get("job_id"))
            with pytest.raises(Exception):  # noqa: B017  # any refusal will do
                verify(delivery.secret, delivery.headers, forged(delivery))

    return run


def node_verdicts(snippet_call: str, deliveries: dict[str, Delivery], prelude: str) -> list[Any]:
    cases = []
    for delivery in deliveries.values():
        for body in (delivery.body, forged(delivery)):
            cases.append({"secret": delivery.secret, "headers": delivery.headers,
                          "body": body.decode()})  # fmt: skip
    script = (
        prelude
        + f"""
const cases = {json.dumps(cases)};
(async () => {{
  const verdicts = [];
  for (const c of cases) {{
    try {{ verdicts.push(await ({snippet_call})(c)); }} catch (error) {{ verdicts.push(null); }}
  }}
  console.log(JSON.stringify(verdicts));
}})();
"""
    )
    verdicts: list[Any] = json.loads(node(script))
    return verdicts


def expect_verdicts(verdicts: list[Any], deliveries: dict[str, Delivery]) -> None:
    ids = [d.item_id for d in deliveries.values()]
    assert [v and (v.get("id") or v.get("job_id")) for v in verdicts] == [
        x for item in ids for x in (item, None)
    ]


def run_verify_node(_bridge, deliveries):
    verdicts = node_verdicts(
        "(c) => verifyDelivery(c.secret, c.headers, c.body)", deliveries,
        RECIPES["verify-node"].code,
    )  # fmt: skip
    expect_verdicts(verdicts, deliveries)


def run_zapier_code(_bridge, deliveries):
    wrapped = f"""
const zapierStep = async (c) => {{
  const inputData = {{ secret: c.secret, body: c.body, id: c.headers['webhook-id'],
    timestamp: c.headers['webhook-timestamp'], signature: c.headers['webhook-signature'] }};
  let output;
  {RECIPES["zapier-code-verify"].code}
  return output;
}};
"""
    expect_verdicts(node_verdicts("zapierStep", deliveries, wrapped), deliveries)


def run_n8n_code(_bridge, deliveries):
    code = RECIPES["n8n-code-verify"].code
    wrapped = """
const n8nStep = async (c) => {
  const self = { helpers: { getBinaryDataBuffer: async () => Buffer.from(c.body, 'utf8') } };
  const $input = { first: () => ({ json: { headers: c.headers } }) };
  return (async function () {
    CODE
  }).call(self).then((items) => items[0].json);
};
""".replace("CODE", code.replace("'whsec_...'", "c.secret"))
    expect_verdicts(node_verdicts("n8nStep", deliveries, wrapped), deliveries)


RUNNERS = {
    "create-connection": run_create_connection,
    "auth-test": run_auth_test,
    "list-dropdowns": run_list_dropdowns,
    "zapier-post-action": run_query_agent_action("zapier-post-action"),
    "make-http-action": run_query_agent_action("make-http-action"),
    "make-job-status": run_job_status,
    "n8n-http-action": run_search_action,
    "pipedream-http-action": run_upsert_action,
    "activepieces-http-action": run_delete_action,
    "zapier-unsubscribe": run_unsubscribe,
    "cms-events": run_events,
    "cms-generic-send": run_generic_send,
    "cms-payload-hook": run_payload_hook,
    "verify-python": run_verify_python("verify-python"),
    "verify-python-library": run_verify_python("verify-python-library"),
    "verify-node": run_verify_node,
    "zapier-code-verify": run_zapier_code,
    "n8n-code-verify": run_n8n_code,
    **{name: run_subscribe(name) for name in RECIPES if name.endswith("-subscribe")},
    **{name: run_source(name) for name in RECIPES
       if name.startswith("cms-") and name not in
       ("cms-events", "cms-generic-send", "cms-payload-hook")},
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_runs(name, bridge, hook_delivery, callback_delivery):
    """The recipe does what its guide says, against a live bridge."""
    RUNNERS[name](bridge, {"hook": hook_delivery, "callback": callback_delivery})
