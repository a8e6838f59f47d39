"""Conversation listing (documented and /api/logs) and conversation messages."""

import pytest


def _list(client, headers, agent_id, **params):
    return client.get(f"/api/v1/agents/{agent_id}/conversations", headers=headers, params=params)


def test_documented_list_ascending_with_total(client, headers, agent_id):
    """Conversations list ascending by createdAt with meta.total."""
    body = _list(client, headers, agent_id, limit=2).json()
    created = [c["createdAt"] for c in body["data"]]
    assert created == ["2026-05-02T09:58:40.000Z", "2026-05-02T10:04:11.000Z"]
    assert body["meta"] == {"page": 1, "limit": 2, "total": 3}


def test_after_is_exclusive_by_default(client, admin, headers, agent_id):
    """after excludes a conversation created at exactly that time unless switched inclusive."""
    after = "2026-05-02T10:04:11Z"
    assert _list(client, headers, agent_id, after=after).json()["meta"]["total"] == 1
    admin.settings(after_inclusive=True)
    assert _list(client, headers, agent_id, after=after).json()["meta"]["total"] == 2


def test_after_accepts_a_date(client, headers, agent_id):
    """after accepts a bare date such as 2025-01-01."""
    assert _list(client, headers, agent_id, after="2026-05-03").json()["data"] == []


def test_descending_order_switch(client, admin, headers, agent_id):
    """The order switch lists newest first."""
    admin.settings(order="desc")
    data = _list(client, headers, agent_id).json()["data"]
    assert data[0]["createdAt"] == "2026-05-02T10:30:00.000Z"


def test_limit_clamps_at_100(client, headers, agent_id):
    """limit above 100 is clamped to 100."""
    assert _list(client, headers, agent_id, limit=500).json()["meta"]["limit"] == 100


def test_bad_after_is_400(client, headers, agent_id):
    """A non-ISO after answers 400."""
    assert _list(client, headers, agent_id, after="yesterday").status_code == 400


@pytest.fixture
def many(admin, agent_id):
    for minute in range(150):
        admin.create_conversation(
            agent_id,
            created_at=f"2026-06-01T00:{minute // 60:02d}:{minute % 60:02d}Z",
            updated_at=f"2026-06-02T{minute // 60:02d}:{minute % 60:02d}:00Z",
        )


def test_logs_pages_of_100_by_updated_desc(client, headers, legacy, many):
    """/api/logs pages hold 100 rows, newest updatedAt first, with an id cursor."""
    first = client.get("/api/logs", headers=headers).json()
    second = client.get("/api/logs", headers=headers, params={"cursor": first[-1]["id"]}).json()
    assert len(first) == 100
    assert len(second) == 53
    stamps = [c["updatedAt"] for c in first + second]
    assert stamps == sorted(stamps, reverse=True)
    assert len({c["id"] for c in first + second}) == 153
    assert len(first[0]["messages"]) <= 2


def test_logs_skip_rows_touched_between_pages(client, admin, headers, legacy, many):
    """A conversation touched between page reads moves to the top and is skipped by page 2."""
    first = client.get("/api/logs", headers=headers).json()
    cursor = first[-1]["id"]
    moved = client.get("/api/logs", headers=headers, params={"cursor": cursor}).json()[0]["id"]
    admin.touch_conversation(moved, at=1_900_000_000)
    second = client.get("/api/logs", headers=headers, params={"cursor": cursor}).json()
    assert moved not in {c["id"] for c in first + second}


def test_logs_filter_by_agent(client, admin, demo, headers, legacy):
    """agentId filters /api/logs to one agent."""
    public_id = demo["agents"][1]["id"]
    admin.create_conversation(public_id)
    rows = client.get("/api/logs", headers=headers, params={"agentId": public_id}).json()
    assert [c["agentId"] for c in rows] == [public_id]


def test_conversation_messages_page_newest_first(client, headers, agent_id):
    """Conversation messages come 50 per page, newest first, with a message-id cursor."""
    conv_id = None
    for turn in range(30):
        body = {"query": f"q{turn}", "conversationId": conv_id}
        response = client.post(f"/api/v1/agents/{agent_id}/query", headers=headers, json=body)
        conv_id = response.json()["data"]["conversationId"]
    page = client.get(f"/api/v1/conversations/{conv_id}", headers=headers).json()["data"]
    cursor = page["messages"][-1]["id"]
    rest = client.get(
        f"/api/v1/conversations/{conv_id}", headers=headers, params={"cursor": cursor}
    ).json()["data"]
    assert len(page["messages"]) == 50
    assert len(rest["messages"]) == 10
    assert page["messages"][0]["text"].endswith(": q29")
    assert page["messages"][0]["inputId"] == page["messages"][1]["id"]


def test_legacy_missing_conversation_is_null(client, headers, legacy):
    """Legacy GET of an unknown conversation answers 200 null."""
    response = client.get("/api/conversations/cnothing", headers=headers)
    assert (response.status_code, response.json()) == (200, None)
