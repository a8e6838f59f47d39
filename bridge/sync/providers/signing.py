"""Produce the headers a provider would send, from the same scheme records `verify` reads.

This is the sender half of the `verify`/`sign` pair: tests and the pipeline's route tests
build realistic signed requests with it. It is not used to answer any request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bridge.sync.providers import codec
from bridge.sync.providers.content import signed_content
from bridge.sync.providers.generic import GenericConfig
from bridge.sync.providers.providers import Provider
from bridge.sync.providers.schemes import HmacScheme, TokenScheme
from bridge.sync.providers.verify import scheme_for


def sign(
    provider: Provider,
    secret: str | Sequence[str],
    raw_body: bytes,
    *,
    now: float,
    method: str = "POST",
    path: str = "/",
    msg_id: str = "msg_2hLmFJ1sXzFVpbG8dwG0sB2xMbQ",
    headers: Mapping[str, str] | None = None,
    config: GenericConfig | None = None,
) -> dict[str, str]:
    """Return `headers` plus the signature headers `provider` would add at time `now`.

    Several secrets produce several signatures where the format allows it (Standard
    Webhooks items, Stripe `v1=` pairs), as senders do during a rotation. For Contentful
    every header in `headers` is listed as signed, as Contentful's signer does.

    Raises:
        ValueError: several secrets for a format that carries only one signature.
    """
    scheme = scheme_for(provider, config)
    secrets = [secret] if isinstance(secret, str) else list(secret)
    out = dict(headers or {})
    if isinstance(scheme, TokenScheme):
        out[scheme.header] = scheme.prefix + secrets[0]
        return out
    stamp = _stamp(scheme, now)
    if stamp is not None and scheme.timestamp is not None and scheme.timestamp.source == "header":
        out[scheme.timestamp.name] = stamp
    if scheme.id_header is not None:
        out.setdefault(scheme.id_header, msg_id)
    if scheme.signed_headers_header is not None:
        names = {name.lower() for name in out} | {scheme.signed_headers_header}
        out[scheme.signed_headers_header] = ",".join(sorted(names))
    lower = {name.lower(): value for name, value in out.items()}
    content = signed_content(scheme, raw_body, lower, timestamp=stamp, method=method, path=path)
    macs = [codec.encode(scheme.encoding, _mac(scheme, s, content)) for s in secrets]
    out[scheme.header] = _format(scheme, macs, stamp)
    return out


def _stamp(scheme: HmacScheme, now: float) -> str | None:
    if scheme.timestamp is None:
        return None
    return str(int(now * 1000) if scheme.timestamp.unit == "ms" else int(now))


def _mac(scheme: HmacScheme, secret: str, content: bytes) -> bytes:
    key = codec.derive_key(scheme.key, secret)
    if key is None:
        raise ValueError("secret is not valid for this scheme")
    return codec.mac(scheme.algorithm, key, content)


def _format(scheme: HmacScheme, macs: Sequence[str], stamp: str | None) -> str:
    if scheme.format == "items":
        return " ".join(f"{scheme.sig_key},{m}" for m in macs)
    if scheme.format == "kv":
        pairs = [f"{scheme.sig_key}={m}" for m in macs]
        stamped = [f"t={stamp}", *pairs] if scheme.stamp_first else [*pairs, f"t={stamp}"]
        return scheme.kv_separator.join(stamped)
    if len(macs) != 1:
        raise ValueError("this format carries one signature")
    return scheme.prefix + macs[0]
