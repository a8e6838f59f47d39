"""Agent queries: continuity, validation, takeover, approvals and SSE streaming."""

import json
from urllib.parse import unquote

import pytest


def _ask(client, headers, agent_id, prefix="/api/v1", **body):
    return client.post(f"{prefix}/agents/{agent_id}/query", headers=headers, json=body)


def test_answers_show_continuity(client, headers, agent_id):
    """A conversation id carries the turn count forward."""
    first = _ask(client, headers, agent_id, query="hello").json()["data"]
    conv_id = first["conversationId"]
    second = _ask(client, headers, agent_id, query="again", conversationId=conv_id).json()["data"]
    assert first["answer"] == f"turn 1 of conversation {conv_id}: hello"
    assert second["answer"] == f"turn 2 of conversation {conv_id}: again"
    assert second["visitorId"] == first["visitorId"]
    assert set(second) >= {"messageId", "sources", "usage", "approvals"}


def test_answer_cites_agent_datastore(client, headers, agent_id):
    """Sources come from the agent's datastores, best match first."""
    data = _ask(client, headers, agent_id, query="what is the return window").json()["data"]
    assert data["sources"][0]["datasource_name"] == "Returns FAQ"
    assert data["usage"]["totalTokens"] > 0


def test_unknown_conversation_id_is_created(client, headers, agent_id):
    """An unknown conversationId starts a conversation with that id."""
    data = _ask(client, headers, agent_id, query="hi", conversationId="my-own-id").json()["data"]
    assert data["conversationId"] == "my-own-id"


def test_unknown_conversation_can_be_404(client, admin, headers, agent_id):
    """The unknown_conversation switch makes unknown ids 404."""
    admin.settings(unknown_conversation="404")
    response = _ask(client, headers, agent_id, query="hi", conversationId="nope")
    assert response.status_code == 404


@pytest.mark.parametrize("body", [{}, {"query": 3}, {"query": ""}])
def test_documented_rejects_bad_query(client, headers, agent_id, body):
    """The documented profile answers 400 to a missing or non-string query."""
    response = client.post(f"/api/v1/agents/{agent_id}/query", headers=headers, json=body)
    assert response.status_code == 400


def test_legacy_does_not_validate(client, headers, agent_id, legacy):
    """The legacy profile accepts unknown fields and an empty query."""
    response = _ask(client, headers, agent_id, "/api", query="", modelName="gpt_99")
    assert response.status_code == 200
    assert "conversationId" in response.json()


def test_foreign_datastore_filter_is_403(client, admin, demo, headers, agent_id):
    """A datastore filter outside the agent's datastores answers 403."""
    other = admin.create_datastore(demo["org"]["id"], "Unattached")
    response = _ask(client, headers, agent_id, query="x", filters={"datastore_ids": [other["id"]]})
    assert response.status_code == 403


def test_human_takeover_omits_answer(client, admin, headers, agent_id):
    """With AI disabled the reply has only conversationId and visitorId."""
    conv_id = _ask(client, headers, agent_id, query="hi").json()["data"]["conversationId"]
    admin.set_ai_enabled(conv_id, False)
    data = _ask(client, headers, agent_id, query="human please", conversationId=conv_id).json()
    assert set(data["data"]) == {"conversationId", "visitorId"}


def test_pending_approval_answers_empty(client, admin, demo, headers):
    """An agent awaiting tool approval answers "" with empty usage and an approval."""
    agent = admin.create_agent(demo["org"]["id"], "Tooling", pending_approval=True)
    data = _ask(client, headers, agent["id"], query="do it").json()["data"]
    assert data["answer"] == ""
    assert data["usage"] == {}
    assert data["approvals"][0]["status"] == "pending"


def _frames(text):
    frames = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        frames.append((lines.get("event"), lines["data"]))
    return frames


def test_streaming_frames(client, admin, headers, agent_id):
    """streaming:true answers SSE: URL-encoded answer chunks, endpoint_response, [DONE]."""
    admin.settings(stream_chunk_chars=5)
    response = _ask(client, headers, agent_id, query="hello world", streaming=True)
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = _frames(response.text)
    chunks = [unquote(data) for event, data in frames if event == "answer"]
    final = json.loads(unquote(next(d for e, d in frames if e == "endpoint_response")))
    assert all(len(chunk) <= 5 for chunk in chunks)
    assert "".join(chunks) == final["answer"]
    assert "usage" not in final
    assert frames[-1] == (None, "[DONE]")


def test_streaming_quota_error_is_200_frame(client, admin, headers, agent_id):
    """A quota failure while streaming answers 200 with data: [ERROR]USAGE_LIMIT."""
    admin.settings(quota_enabled=True, quota_per_month=0)
    response = _ask(client, headers, agent_id, query="hi", streaming=True)
    assert response.status_code == 200
    assert _frames(response.text) == [(None, "[ERROR]USAGE_LIMIT")]


def test_stream_error_fault_cuts_the_stream(client, admin, headers, agent_id):
    """A stream_error fault ends the stream with an [ERROR] frame after some chunks."""
    admin.settings(stream_chunk_chars=4)
    admin.add_fault("stream_error", path="/query$", code="INTERNAL")
    frames = _frames(_ask(client, headers, agent_id, query="a long question", streaming=True).text)
    assert frames[0][0] == "answer"
    assert frames[-1] == (None, "[ERROR]INTERNAL")
