"""The production web server as deployed: gunicorn with `gunicorn.conf.py` (gevent workers).

Started for real in a subprocess, the way the Procfile starts it, so the config file itself is
under test: it boots, serves, its access log never shows an inbound URL's secret token, a
stalled body is cut short, and what gunicorn itself refuses is answered as JSON.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import time
from typing import Any

import httpx
import pytest

from tests.processes import GUNICORN, gunicorn

pytestmark = pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed")


def test_serves_with_the_access_log_off_by_default(tmp_path):
    token = secrets.token_urlsafe(24)
    with gunicorn(tmp_path) as (base, log, _server):
        answer = httpx.post(f"{base}/in/{token}", content=b"{}")
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"
    text = log.read_text()
    assert "Booting worker" in text
    assert "/healthz" not in text
    assert token not in text
    assert "Control socket" not in text  # one default path per user, shared by every server


def test_access_log_hides_inbound_tokens(tmp_path):
    token = secrets.token_urlsafe(24)
    with gunicorn(tmp_path, WEB_ACCESS_LOG="true") as (base, log, _server):
        assert httpx.post(f"{base}/in/{token}", content=b"{}").status_code == 404
        httpx.post(f"{base}//in/{token}", content=b"{}")  # whatever it answers, no token logged
        assert httpx.get(f"{base}/healthz").status_code == 200
    text = log.read_text()
    assert '"POST /in/<redacted>" 404' in text
    assert '"GET /healthz" 200' in text
    assert token not in text


def test_a_run_past_the_deadline_becomes_a_job_under_gevent(tmp_path, sim_server, sim_admin):
    """Under gunicorn's gevent workers (where a run is a greenlet), a quick query answers 200,
    and one past BRIDGE_ACTION_DEADLINE answers 504 with a job id whose result lands later."""
    seeded = sim_admin.seed()
    agent = seeded["agents"][0]["id"]
    settings = {"ZAPPWAY_BASE_URL": f"{sim_server}/api/v1", "BRIDGE_ACTION_DEADLINE": "1",
                "BRIDGE_RATE_WAIT": "0.5"}  # fmt: skip
    with gunicorn(tmp_path, **settings) as (base, log, _server):
        created = httpx.post(f"{base}/v1/connections", json={"api_key": seeded["key"]})
        headers = {"Authorization": f"Bearer {created.json()['token']}"}
        body = {"agent_id": agent, "query": "Where is my order?"}
        quick = httpx.post(f"{base}/v1/actions/query_agent", json=body, headers=headers)
        assert quick.status_code == 200, log.read_text()[-2000:]
        sim_admin.add_fault("latency", path="/query$", seconds=2.5)
        slow = httpx.post(f"{base}/v1/actions/query_agent", json=body, headers=headers,
                          timeout=10)  # fmt: skip
        assert slow.status_code == 504, slow.text
        job_id = slow.json()["error"]["job_id"]
        deadline = time.monotonic() + 10
        while (job := httpx.get(f"{base}/v1/jobs/{job_id}", headers=headers).json())[
            "status"
        ] == "running":
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "succeeded", job
        assert job["result"]["answer"]


def raw_exchange(base: str, request: bytes, wait: float = 40) -> tuple[bytes, float]:
    """Send raw bytes and keep the connection open; return (answer, seconds until it came)."""
    host, port = base.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer, time.monotonic() - started


def _length(answer: bytes) -> int:
    found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", answer)
    return int(found.group(1)) if found else 1 << 30


def parsed(answer: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(status, headers with lower-case names, JSON body) of a raw HTTP/1.1 answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_a_body_cut_short_is_answered_at_once_with_a_json_400(tmp_path, worker_class):
    """A request announcing more body than it sends gets a JSON 400 `incomplete_body` once
    WEB_BODY_TIMEOUT (1 s here) passes with nothing arriving, instead of holding the worker's
    connection until the client gives up; the worker then serves the next request."""
    settings = {"WEB_BODY_TIMEOUT": "1", "WEB_WORKER_CLASS": worker_class}
    with gunicorn(tmp_path, **settings) as (base, _log, _server):
        short = (b"POST /v1/connections HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nContent-Length: 100\r\n\r\n" + b'{"api_key": "zw_')  # fmt: skip
        answer, took = raw_exchange(base, short)
        status, headers, body = parsed(answer)
        assert (status, body["error"]["code"]) == (400, "incomplete_body"), answer
        assert headers["content-type"] == "application/json"
        assert "WEB_BODY_TIMEOUT" in body["error"]["message"]
        assert took < 30  # a bound on correctness (no 90 s hang), not a timing goal
        assert httpx.get(f"{base}/healthz").status_code == 200


def test_requests_gunicorn_refuses_are_answered_as_json(tmp_path):
    """A malformed request line (400), a request line over gunicorn's limit (414) and a header
    over its limit (431) come back in the JSON error envelope, not gunicorn's HTML page; a
    wrong method is a JSON 405 with `Allow`."""
    cases = [
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    ]
    with gunicorn(tmp_path) as (base, _log, _server):
        for request, expected in cases:
            status, headers, body = parsed(raw_exchange(base, request)[0])
            assert status == expected, (request[:20], status)
            assert headers["content-type"] == "application/json"
            assert body["error"]["code"] and len(body["error"]["message"]) <= 250
        wrong = httpx.put(f"{base}/v1/connections")
        assert wrong.status_code == 405
        assert wrong.json()["error"]["code"] == "method_not_allowed"
        assert "POST" in wrong.headers["Allow"]


def chunked(body: bytes, *, ended: bool = True, size: int = 1000) -> bytes:
    """A POST /v1/connections with `body` sent in chunks (no Content-Length)."""
    head = (b"POST /v1/connections HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    return head + wire + (b"0\r\n\r\n" if ended else b"")


def test_a_chunked_body_is_held_to_the_same_limit_and_stall_bound(tmp_path):
    """A body sent in chunks, without a Content-Length, is refused with a 413 past
    BRIDGE_MAX_BODY_BYTES like an announced one (werkzeug alone stopped reading at the limit:
    the app got it cut short, as a 200 on truncated JSON or a webhook's bad signature); one
    within the limit is read whole; one that stops arriving is a 400 `incomplete_body`; a
    malformed chunk is a 400, not a 500."""
    settings = {"WEB_BODY_TIMEOUT": "1", "BRIDGE_MAX_BODY_BYTES": "2048"}
    padded = b'{"label": "chunked"' + b" " * 1990 + b"}"  # valid JSON: cut at 2048, still valid
    with gunicorn(tmp_path, **settings) as (base, _log, _server):
        status, _, body = parsed(raw_exchange(base, chunked(padded + b" " * 100))[0])
        assert (status, body["error"]["code"]) == (413, "request_entity_too_large"), body

        status, _, body = parsed(raw_exchange(base, chunked(padded))[0])
        assert (status, body["error"]["fields"]) == (422, ["api_key"]), body  # read whole

        status, _, body = parsed(raw_exchange(base, chunked(padded, ended=False))[0])
        assert (status, body["error"]["code"]) == (400, "incomplete_body"), body

        malformed = chunked(b"").replace(b"0\r\n\r\n", b"zz\r\n{}\r\n0\r\n\r\n")
        status, _, body = parsed(raw_exchange(base, malformed)[0])
        assert status == 400, body
        assert httpx.get(f"{base}/healthz").status_code == 200
