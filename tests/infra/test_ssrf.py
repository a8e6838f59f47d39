"""SSRF rules for user-supplied URLs: address classes, URL shapes, resolver answers, rebinding.

Nothing here connects to a non-loopback address: "public" cases are only validated, and every
delivery that would be refused points at a loopback listener that must receive nothing.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any

import pytest

from bridge.hooks import detection
from bridge.hooks.tasks import HookTasks
from bridge.infra import netguard
from bridge.infra.outbound import OutboundClient
from bridge.web.context import service_of
from tests.conftest import bearer, runtime_of
from tests.receivers import receiver

PUBLIC_V4 = "93.184.216.34"

NON_PUBLIC = [
    "127.0.0.1",
    "127.255.255.254",
    "::1",
    "0.0.0.0",  # noqa: S104 (an address under test, nothing binds)
    "::",
    "169.254.169.254",
    "::ffff:169.254.169.254",
    "::ffff:127.0.0.1",
    "::127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:5",
    "2002:7f00:1::",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo wrapping 192.0.2.45 (documentation)
    "224.0.0.1",
    "ff02::1",
    "255.255.255.255",
    "240.0.0.1",
    "10.0.0.5",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "192.0.0.8",
    "192.0.2.1",
    "198.18.0.1",
    "fd00:ec2::254",
    "fc00::1",
    "fe80::1",
    "2001:db8::1",
]
PUBLIC = [PUBLIC_V4, "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::5db8:d822", "2002:5db8:d822::"]

REFUSED_URLS = [
    "http://127.0.0.1/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://224.0.0.1/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://10.0.0.5/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[fd00:ec2::254]/",
    "http://0.0.0.0:8080/",
    "http://[fe80::1%25eth0]/",
]
BAD_SHAPES = [
    "ftp://93.184.216.34/hook",
    "file:///etc/passwd",
    "gopher://93.184.216.34:70/_",
    "javascript:alert(1)",
    "//93.184.216.34/hook",
    "http:///hook",
    "http://user:secret@93.184.216.34/hook",
    "http://user@93.184.216.34/hook",
    "http://93.184.216.34:99999/hook",
]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses_are_refused(address):
    """Loopback, private, link-local, CGNAT, multicast, reserved and wrapped forms are refused."""
    assert netguard.is_public(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address):
    """Globally routable addresses, also when wrapped in NAT64 or 6to4, are public."""
    assert netguard.is_public(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("::ffff:169.254.169.254", "169.254.169.254"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("2002:7f00:1::", "127.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
        ("::127.0.0.1", "127.0.0.1"),
        ("2606:4700:4700::1111", None),
        ("10.0.0.5", None),
    ],
)
def test_embedded_ipv4_is_unwrapped(address, inner):
    """Mapped, NAT64, 6to4, Teredo and compatible IPv6 forms yield the IPv4 they carry."""
    found = netguard.embedded_ipv4(ipaddress.ip_address(address))
    assert (str(found) if found else None) == inner


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_validate_target_refuses_internal_urls(url):
    """Internal targets are refused however the address is spelled."""
    with pytest.raises(netguard.UnsafeTarget):
        netguard.validate_target(url, allow_private=False)


@pytest.mark.parametrize("url", BAD_SHAPES)
def test_validate_target_refuses_bad_shapes_even_when_private_is_allowed(url):
    """Other schemes, missing hosts, credentials and bad ports are refused in every mode."""
    with pytest.raises(netguard.UnsafeTarget):
        netguard.validate_target(url, allow_private=True)


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f.1", "0177.0.0.1", "0135.0270.0330.042", "1572395042", "93.184.216.34."],
)
def test_odd_ipv4_spellings_are_refused_in_every_mode(host):
    """Decimal, hex and octal IPv4 spellings are refused outright, even of a public address."""
    with pytest.raises(netguard.UnsafeTarget, match="standard IP"):
        netguard.validate_target(f"http://{host}/hook", allow_private=True)


def test_credentials_message_says_why():
    """The refusal of a URL with credentials explains itself."""
    with pytest.raises(netguard.UnsafeTarget, match="credentials"):
        netguard.validate_target("https://me:pw@93.184.216.34/", allow_private=False)


def test_a_public_literal_is_allowed_without_dns(monkeypatch):
    """A public IP literal passes; the check never needs a name server for it."""
    real = socket.getaddrinfo

    def numeric_only(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real(host, port, *args, **{**kwargs, "flags": socket.AI_NUMERICHOST})

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    netguard.validate_target(f"https://{PUBLIC_V4}/hooks/standard/1/abc/", allow_private=False)
    netguard.validate_target("http://[2606:4700:4700::1111]:8443/x", allow_private=False)


def test_private_targets_are_allowed_only_when_configured():
    """allow_private_targets (tests, self-hosted n8n on a LAN) lifts the address rule only."""
    netguard.validate_target("http://127.0.0.1:5678/webhook/x", allow_private=True)
    with pytest.raises(netguard.UnsafeTarget):
        netguard.validate_target("http://127.0.0.1:5678/webhook/x", allow_private=False)


def test_a_name_resolving_to_a_private_address_is_refused(resolver):
    """A hostname is judged by what it resolves to: 10.0.0.5 behind a public-looking name fails."""
    resolver({"hooks.example.test": ["10.0.0.5"]})
    with pytest.raises(netguard.UnsafeTarget, match="private"):
        netguard.validate_target("https://hooks.example.test/x", allow_private=False)


def test_one_private_answer_among_public_ones_is_refused(resolver):
    """Every A/AAAA answer must be public, not just the first."""
    resolver({"mixed.example.test": [PUBLIC_V4, "::1"]})
    with pytest.raises(netguard.UnsafeTarget):
        netguard.validate_target("https://mixed.example.test/x", allow_private=False)


def test_a_name_that_does_not_resolve_is_refused():
    """An unresolvable host is refused, not retried against some default."""
    with pytest.raises(netguard.UnsafeTarget, match="resolve"):
        netguard.validate_target("http://no-such-host.invalid/x", allow_private=False)


def test_a_public_name_is_allowed(resolver):
    """A name whose every answer is public passes (validated only, never contacted)."""
    resolver({"hooks.zapier.test": [PUBLIC_V4, "2606:4700:4700::1111"]})
    netguard.validate_target("https://hooks.zapier.test/hooks/standard/1/", allow_private=False)


def test_outbound_never_reaches_a_loopback_listener(resolver):
    """Every loopback spelling, and a name resolving to loopback, is refused before connecting."""
    resolver({"sneaky.example.test": ["127.0.0.1"]})
    outbound = OutboundClient(allow_private=False, timeout_s=2)
    secret = "whsec_" + "A" * 43 + "="
    with receiver() as rec:
        port = rec.port
        urls = [
            f"http://127.0.0.1:{port}/hook",
            f"http://2130706433:{port}/hook",
            f"http://0x7f.1:{port}/hook",
            f"http://0177.0.0.1:{port}/hook",
            f"http://[::ffff:127.0.0.1]:{port}/hook",
            f"http://localhost:{port}/hook",
            f"http://sneaky.example.test:{port}/hook",
        ]
        attempts = [outbound.post(url, "msg_1_hook", {"id": "x"}, secret) for url in urls]
        time.sleep(0.1)
        assert rec.received == []
    outbound.close()
    for attempt in attempts:
        assert attempt.status == 0
        assert attempt.error is not None and attempt.error.startswith("unsafe target")


def test_subscribing_a_private_target_is_422_naming_target_url(client, connection, seeded):
    """Without allow_private_targets, POST /v1/hooks refuses internal URLs with 422 target_url."""
    for url in ("http://127.0.0.1:8080/hook", "http://169.254.169.254/latest/meta-data/"):
        response = client.post(
            "/v1/hooks",
            json={"target_url": url, "agent_id": seeded["agents"][0]["id"]},
            headers=bearer(connection["token"]),
        )
        assert response.status_code == 422
        error = response.get_json()["error"]
        assert error["fields"] == ["target_url"]
        assert "target_url" in error["message"]
        assert "BRIDGE_ALLOW_PRIVATE_TARGETS" in error["message"]  # the operator's switch
    listed = client.get("/v1/hooks", headers=bearer(connection["token"]))
    assert listed.get_json() == []


def test_dns_rebinding_between_subscribe_and_delivery_is_refused(
    make_app, seeded, sim_admin, resolver
):
    """A name public at subscribe time and loopback at delivery time gets no request at all."""
    app = make_app(poll_interval_s=0.05, upstream_max_retries=0)
    client = app.test_client()
    token = client.post("/v1/connections", json={"api_key": seeded["key"]}).get_json()["token"]
    agent = seeded["agents"][0]["id"]
    with receiver() as rec:
        resolver({"rebind.example.test": [PUBLIC_V4]})
        created = client.post(
            "/v1/hooks",
            json={"target_url": f"http://rebind.example.test:{rec.port}/hook", "agent_id": agent},
            headers=bearer(token),
        )
        assert created.status_code == 201
        resolver({"rebind.example.test": ["127.0.0.1"]})
        sim_admin.create_conversation(agent, messages=[{"from": "human", "text": "hi"}])
        time.sleep(0.06)
        for watch_id in detection.watched(runtime_of(app)):
            service_of(app, HookTasks).poll_watch(watch_id)
        time.sleep(0.1)
        assert rec.received == []
    shown = client.get(f"/v1/hooks/{created.get_json()['id']}", headers=bearer(token)).get_json()
    (delivery,) = shown["deliveries"]
    (attempt,) = delivery["attempts"]
    assert attempt["status"] is None
    assert attempt["error"].startswith("unsafe target")
    assert delivery["state"] == "pending"
