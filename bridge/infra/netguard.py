"""SSRF guard: decide whether an address or URL may receive requests from the bridge.

User-supplied URLs (job callbacks, hook targets) must not reach the bridge's own network:
loopback, private, link-local (cloud metadata at 169.254.169.254), multicast, reserved and
unspecified ranges, including the IPv6 forms that embed an IPv4 address (IPv4-mapped,
IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo). Checks apply to resolved
addresses, so DNS names are covered (and decimal, hex and octal IPv4 spellings are refused outright,
as no real target uses them and HTTP clients disagree on them); `bridge.infra.outbound`
connects to the very address that was checked, so a DNS answer cannot change in between.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
HEX = frozenset("0123456789abcdef")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in ("100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "fd00:ec2::/32")
)


class UnsafeTarget(ValueError):
    """Raised when a URL is not allowed as a delivery target; the message says why."""


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in NAT64 or ip in NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0:  # IPv4-compatible ::a.b.c.d (deprecated, still routable by some stacks)
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """Tell whether an address is publicly routable (and so a legitimate delivery target)."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return is_public(inner)
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback:
        return False
    if ip.is_link_local or ip.is_private or any(ip in net for net in EXTRA_BLOCKED):
        return False
    return ip.is_global


def check_url_shape(url: str) -> tuple[str, str, int]:
    """Return (scheme, host, port) of an http(s) URL without credentials.

    Raises:
        UnsafeTarget: for other schemes, missing hosts, embedded credentials or bad ports.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeTarget("URL is malformed") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("URL must start with http:// or https://")
    if not parts.hostname:
        raise UnsafeTarget("URL has no host")
    if parts.username or parts.password:
        raise UnsafeTarget("URL must not contain credentials")
    if _odd_ipv4(parts.hostname):
        raise UnsafeTarget("URL host must be a name or a standard IP address")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _odd_ipv4(host: str) -> bool:
    """Tell a numeric host that is not dotted-quad IPv4 (`2130706433`, `0x7f.1`, `0177.0.0.1`).

    Resolvers read these as IPv4 and HTTP clients refuse some of them; no real target needs one.
    """
    if ":" in host:
        return False  # IPv6 literal, judged by its address
    last = host.rstrip(".").rsplit(".", 1)[-1].lower()
    numeric = last.isdigit() or (last.startswith("0x") and all(c in HEX for c in last[2:]))
    if not numeric:
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False


def resolve_public(host: str, port: int, allow_private: bool) -> list[IPAddress]:
    """Resolve a host and return its addresses, refusing any that is not public.

    Raises:
        UnsafeTarget: when the name does not resolve or any answer is non-public.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeTarget("URL host does not resolve") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private:
        for address in addresses:
            if not is_public(address):
                raise UnsafeTarget(
                    "URL points to a private, loopback or reserved address (allowed only "
                    "when the operator sets BRIDGE_ALLOW_PRIVATE_TARGETS=true)"
                )
    return addresses


def validate_target(url: str, allow_private: bool) -> None:
    """Check a URL at subscribe time (shape and current DNS answer).

    Raises:
        UnsafeTarget: with a message fit for the API caller.
    """
    _scheme, host, port = check_url_shape(url)
    resolve_public(host, port, allow_private)
