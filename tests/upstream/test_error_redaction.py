"""ZappWay's error messages are passed on to callers, jobs, events and logs, but never a quote
of the key the call sent (`infra/redact`): ZappWay may echo the key it refused."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from bridge.infra.redact import MASK, redact
from tests.conftest import bearer, runtime_of
from tests.sync_helpers import Interposed

KEY = "zw_live_1b7a759af092a758d597ee0e95c4d2f1"


def test_a_known_secret_is_masked_whole_or_cut_short():
    text = f"Invalid API key {KEY}; also tried {KEY[:20]}… and 'Bearer abc.def'"
    masked = redact(text, [KEY])
    assert KEY[:8] not in masked and KEY[-8:] not in masked
    assert masked.count(MASK) == 3
    assert masked.startswith("Invalid API key ")


def test_words_that_share_nothing_with_the_secret_are_kept():
    text = "Field 'query' must be a string of at most 10000 characters"
    assert redact(text, [KEY]) == text
    assert redact(text) == text


def test_a_secret_shorter_than_a_run_is_masked_where_it_stands():
    assert redact("key k9Z2 refused", ["k9Z2"]) == f"key {MASK} refused"


def echo_the_key(status: int, shape: str):
    """An upstream that refuses every agent query quoting the key it was sent."""

    def answer(request: httpx.Request) -> httpx.Response | None:
        if not request.url.path.endswith("/query"):
            return None
        key = request.headers["Authorization"].removeprefix("Bearer ")
        message = f"Invalid API key {key} for this agent"
        if shape == "json":
            return httpx.Response(status, json={"error": {"code": "BAD", "message": message}})
        return httpx.Response(status, text=message, headers={"Content-Type": "text/plain"})

    return answer


@pytest.mark.parametrize("status", [400, 403, 404, 422])
@pytest.mark.parametrize("shape", ["json", "text"])
def test_a_key_quoted_by_zappway_reaches_no_answer_record_or_log(
    make_app, sim_transport, seeded, tmp_path, caplog, status, shape
):
    app = make_app(transport=Interposed(sim_transport, echo_the_key(status, shape)))
    client = app.test_client()
    created = client.post("/v1/connections", json={"api_key": seeded["key"]})
    assert created.status_code == 201, created.get_json()
    headers = {**bearer(created.get_json()["token"]), "Idempotency-Key": "echo-1"}
    body = {"agent_id": seeded["agents"][0]["id"], "query": "Hello?"}

    with caplog.at_level(logging.DEBUG):
        answer = client.post("/v1/actions/query_agent", json=body, headers=headers)
        replay = client.post("/v1/actions/query_agent", json=body, headers=headers)

    assert answer.status_code == {400: 422, 403: 403, 404: 404, 422: 422}[status]
    message = answer.get_json()["error"]["message"]
    assert MASK in message, message  # ZappWay's message is still there, the key is not
    assert "Invalid API key" in message
    key = seeded["key"]
    for text in (answer.get_data(as_text=True), replay.get_data(as_text=True), caplog.text):
        assert key[-12:] not in text
    runtime_of(app).close()  # flushes the activity log, so the database is complete
    for path in Path(tmp_path).rglob("*"):
        if path.is_file():
            assert key[-12:].encode() not in path.read_bytes(), path


def test_a_huge_error_body_is_masked_only_where_it_is_kept():
    """Only what the 250-character message keeps is masked, with a key straddling its end
    whole: a multi-megabyte body is not searched word by word (seconds of a worker)."""
    from bridge.upstream.errors import error_from_response
    from bridge.upstream.wire import Answer

    for offset in range(200, 260, 7):  # the key across the message's end
        text = "x " * (offset // 2) + f"{KEY} " + "filler " * 800_000
        answer = Answer(400, [(b"content-type", b"text/plain")], text.encode())
        message = error_from_response(answer, (KEY,)).message
        assert len(message) <= 250
        assert not [KEY[i : i + 4] for i in range(len(KEY) - 3) if KEY[i : i + 4] in message]
