"""Fault injection, in-process and over real sockets."""

import time

import httpx
import pytest

from sim.testing import SimAdmin

# What a dropped connection looks like to httpx (EOF or RST), as opposed to a timeout.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


def test_status_500_is_json(client, admin, headers):
    """A status fault with 500 answers the profile's JSON error."""
    admin.add_fault("status", status=500, path="/me$", times=1)
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "INTERNAL_SERVER_ERROR"
    assert client.get("/api/v1/me", headers=headers).status_code == 200


def test_status_502_is_html(client, admin, headers):
    """A status fault with 502 answers an HTML page, as a proxy would."""
    admin.add_fault("status", status=502)
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")


def test_forced_rate_limit_with_and_without_retry_after(client, admin, headers):
    """A rate_limit fault answers 429 with the given Retry-After, or none when null."""
    admin.add_fault("rate_limit", retry_after=17, times=1)
    admin.add_fault("rate_limit", retry_after=None, times=1)
    first = client.get("/api/v1/me", headers=headers)
    second = client.get("/api/v1/me", headers=headers)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "17")
    assert second.status_code == 429
    assert "Retry-After" not in second.headers


def test_fault_matches_key_and_agent(client, admin, demo, headers, agent_id):
    """Rules can target one agent; other agents are unaffected."""
    admin.add_fault("status", status=500, agent_id=agent_id)
    public_id = demo["agents"][1]["id"]
    assert client.get(f"/api/v1/agents/{agent_id}", headers=headers).status_code == 500
    assert client.get(f"/api/v1/agents/{public_id}", headers=headers).status_code == 200


def test_probability_is_seeded(headers):
    """The same seed fires a probabilistic rule on the same requests."""
    from sim import create_app

    runs = []
    for _ in range(2):
        app = create_app({"seed": 11})
        with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://s") as c:
            admin = SimAdmin(c)
            key = {"Authorization": f"Bearer {admin.seed()['key']}"}
            admin.add_fault("status", status=500, probability=0.5)
            runs.append([c.get("/api/v1/me", headers=key).status_code for _ in range(20)])
    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 500}


def test_bad_json_truncates_the_body(client, admin, headers):
    """A bad_json fault keeps the status but cuts the JSON body in half."""
    admin.add_fault("bad_json", times=1)
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_fault_until_uses_the_virtual_clock(client, admin, headers):
    """A rule stops firing once the simulator clock passes until."""
    now = admin.advance_clock(0)
    admin.add_fault("status", status=500, until=now + 30)
    assert client.get("/api/v1/me", headers=headers).status_code == 500
    admin.advance_clock(31)
    assert client.get("/api/v1/me", headers=headers).status_code == 200


def test_reset_in_process_raises_transport_error(client, admin, headers):
    """In-process, a reset surfaces as an httpx transport error from the client call."""
    admin.add_fault("reset", times=1)
    with pytest.raises(httpx.TransportError):
        client.get("/api/v1/me", headers=headers)
    assert admin.requests()[-1]["status"] == 0


def test_clear_faults(client, admin, headers):
    """DELETE /__admin/faults removes every rule."""
    admin.add_fault("status", status=500)
    admin.clear_faults()
    assert admin.faults() == []
    assert client.get("/api/v1/me", headers=headers).status_code == 200


def test_bad_fault_rule_is_400(client):
    """An unknown kind or field is rejected."""
    assert client.post("/__admin/faults", json={"kind": "gremlins"}).status_code == 400
    assert client.post("/__admin/faults", json={"kind": "latency", "x": 1}).status_code == 400


@pytest.fixture
def real(served, demo):
    with httpx.Client(base_url=served, timeout=5) as http:
        yield http, SimAdmin(http), {"Authorization": f"Bearer {demo['key']}"}


def test_latency_over_http(real):
    """A latency fault delays the answer by its seconds."""
    http, admin, headers = real
    admin.add_fault("latency", seconds=0.3, path="/me$")
    started = time.monotonic()
    assert http.get("/api/v1/me", headers=headers).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_stall_times_out_the_client(real):
    """A stall never answers, so the client's read timeout fires."""
    http, admin, headers = real
    admin.add_fault("stall", path="/me$", times=1)
    with pytest.raises(httpx.ReadTimeout):
        http.get("/api/v1/me", headers=headers, timeout=0.3)
    admin.clear_faults()  # releases the stalled worker thread
    assert http.get("/api/v1/me", headers=headers).status_code == 200


def test_reset_over_http_drops_the_connection(real):
    """Over real HTTP a reset closes the socket with no response."""
    http, admin, headers = real
    admin.add_fault("reset", times=1)
    with pytest.raises(DROPPED):
        http.get("/api/v1/me", headers=headers)
    assert http.get("/api/v1/me", headers=headers).status_code == 200


def test_reset_after_headers_truncates_the_body(real):
    """A reset after the headers sends the status line and part of the body only."""
    http, admin, headers = real
    admin.add_fault("reset", after_headers=True, times=1)
    with pytest.raises(DROPPED):
        http.get("/api/v1/me", headers=headers)


def test_edge_timeout_answers_524_html(real):
    """An edge_timeout fault waits, then answers a 524 HTML page."""
    http, admin, headers = real
    admin.add_fault("edge_timeout", seconds=0.1)
    response = http.get("/api/v1/me", headers=headers)
    assert response.status_code == 524
    assert response.headers["content-type"].startswith("text/html")


def test_drip_slows_the_body(real):
    """A drip fault sends the body in pieces with pauses between them."""
    http, admin, headers = real
    admin.add_fault("drip", seconds=0.03)
    started = time.monotonic()
    response = http.get("/api/v1/me", headers=headers)
    assert response.json()["data"]["name"] == "Demo Org"
    assert time.monotonic() - started >= 0.2
