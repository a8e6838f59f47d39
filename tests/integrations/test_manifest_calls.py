"""manifest.json followed literally works: the calls the exports make from it succeed.

Issue 12 item 13: the hook list call must send agent_id, fields null in real items are not
marked required, and the dropdown pages start where the manifest says.
"""

from __future__ import annotations

from typing import Any

from bridge.registry import ACTIONS, TRIGGERS
from bridge.spec.manifest import build_manifest
from tests.conftest import bearer

MANIFEST = build_manifest(ACTIONS, TRIGGERS)


def _trigger() -> dict[str, Any]:
    trigger: dict[str, Any] = MANIFEST["triggers"][0]
    return trigger


def test_hook_list_call_as_described_answers_items(client, connection, seeded):
    """The list (sample) call with its fixed params and params_from_input is a 200 array."""
    listing = _trigger()["hook"]["list"]
    user_input = {"agent_id": seeded["agents"][0]["id"]}
    params = {**listing["params"], **{k: user_input[k] for k in listing["params_from_input"]}}
    response = client.get(listing["path"], query_string=params, headers=bearer(connection["token"]))
    assert response.status_code == 200, response.get_json()
    assert isinstance(response.get_json(), list)
    assert response.get_json()


def test_hook_list_call_without_agent_id_is_refused(client, connection):
    """The endpoint does need agent_id: the manifest's old `sample=1` alone is a 422."""
    listing = _trigger()["hook"]["list"]
    response = client.get(
        listing["path"], query_string=listing["params"], headers=bearer(connection["token"])
    )
    assert response.status_code == 422


def test_required_output_fields_have_values_in_real_items(client, connection, seeded):
    """Every field the manifest marks required is non-null in every polled item."""
    required = [f["key"] for f in _trigger()["output_fields"] if f["required"]]
    agent = seeded["agents"][0]["id"]
    items = client.get(
        _trigger()["polling"]["path"],
        query_string={"agent_id": agent, "limit": 100},
        headers=bearer(connection["token"]),
    ).get_json()
    assert items
    assert {"title", "contact"}.isdisjoint(required)
    for item in items:
        for key in required:
            assert item.get(key) is not None, (key, item)


def test_dropdown_paging_is_described_and_true(client, connection):
    """Pages start at `first_page` (1); the page before it is a 422; the total is a header."""
    for dropdown in MANIFEST["dropdowns"]:
        paging = dropdown["paging"]
        assert paging["first_page"] == 1
        headers = bearer(connection["token"])
        first = client.get(
            dropdown["path"],
            query_string={paging["page_param"]: 1, paging["limit_param"]: 1},
            headers=headers,
        )
        assert first.status_code == 200
        assert int(first.headers[paging["total_header"]]) >= len(first.get_json())
        before = client.get(dropdown["path"], query_string={"page": 0}, headers=headers)
        assert before.status_code == 422
        options = client.get(
            dropdown["path"], query_string=paging["options_query"] | {"limit": 1}, headers=headers
        )
        assert set(options.get_json()[0]) == {"label", "value"}


def test_openapi_describes_the_dropdown_pages_the_guides_use(client):
    """OpenAPI states pages from 1, the options format and the X-Total-Count header."""
    spec = client.get("/openapi.json").get_json()
    for path in ("/v1/agents", "/v1/datastores"):
        operation = spec["paths"][path]["get"]
        page = next(p for p in operation["parameters"] if p["name"] == "page")
        assert page["schema"]["minimum"] == 1
        answer = operation["responses"]["200"]
        assert "X-Total-Count" in answer["headers"]
        shapes = answer["content"]["application/json"]["schema"]["items"]["anyOf"]
        components = spec["components"]["schemas"]
        resolved = [components[s["$ref"].rsplit("/", 1)[-1]] if "$ref" in s else s for s in shapes]
        assert any(sorted(shape.get("required", [])) == ["label", "value"] for shape in resolved)
