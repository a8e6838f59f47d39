"""Signature schemes as data: what a provider signs, with which key, and how it writes it.

A scheme is a record, not code, so adding a provider is adding a row (warehouse-style).
`verify.py` interprets these records; `signing.py` produces headers from the same records,
so a test signature and a check can never disagree about the recipe.

Content templates name the parts that are concatenated before the HMAC:
`{body}` (raw bytes, never re-serialised), `{timestamp}` (the digits as sent), `{id}`
(`id_header`), `{method}`, `{path}` (normalised the way Contentful does) and
`{signed_headers}` (Contentful's `name:value;...` list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Algorithm = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64", "base64url-nopad"]
Unit = Literal["s", "ms"]
KeyHandling = Literal["utf8", "whsec-base64", "whole-string"]
"""utf8: the secret text's bytes. whsec-base64: Standard Webhooks, strip `whsec_` and
base64-decode. whole-string: Stripe, the whole `whsec_...` text including the prefix."""

HeaderFormat = Literal["bare", "kv", "items"]
"""bare: the value (after `prefix`) is one signature (GitHub `sha256=<hex>`, Shopify).
kv: comma-separated `key=value` pairs, signatures under `sig_key` (Stripe, Sanity, Ghost).
items: space-separated `<version>,<signature>`, `sig_key` is the version (Standard Webhooks)."""

PLACEHOLDERS = frozenset({"body", "timestamp", "id", "method", "path", "signed_headers"})


@dataclass(frozen=True)
class Timestamp:
    """Where the signed timestamp is, its unit, and the accepted skew in either direction."""

    source: Literal["header", "signature"]
    name: str
    unit: Unit
    window_s: float = 300.0


@dataclass(frozen=True)
class HmacScheme:
    """An HMAC signature over a content template, carried in one header."""

    header: str
    algorithm: Algorithm
    key: KeyHandling
    content: str
    encoding: Encoding
    format: HeaderFormat = "bare"
    prefix: str = ""
    sig_key: str = ""
    timestamp: Timestamp | None = None
    id_header: str | None = None
    signed_headers_header: str | None = None
    kv_separator: str = ","
    stamp_first: bool = True


@dataclass(frozen=True)
class TokenScheme:
    """A static shared token in a header; the body is not authenticated (Strapi, Directus)."""

    header: str
    prefix: str = ""


Scheme = HmacScheme | TokenScheme
