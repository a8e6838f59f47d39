"""The bytes a provider signs, built from a scheme's content template and the raw request.

The body is inserted as received: re-serialised JSON changes escapes (`\\/`, `\\uXXXX`),
spacing and key order, and then no signature matches (webhooks.md section 5).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from urllib.parse import quote

from bridge.sync.providers.errors import VerificationError
from bridge.sync.providers.schemes import HmacScheme

# JavaScript's encodeURI and Node's querystring.escape, which Contentful's toolkit applies.
_ENCODE_URI_SAFE = ";,/?:@&=+$-_.!~*'()#"
_ESCAPE_SAFE = "-_.!~*'()"


def render(template: str, parts: Mapping[str, bytes]) -> bytes:
    """Concatenate the template's literal text (UTF-8) and the named parts."""
    out = bytearray()
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        out += literal.encode("utf-8")
        if name:
            out += parts[name]
    return bytes(out)


def contentful_path(path: str) -> str:
    """Normalise a request path and query the way Contentful's signer does."""
    pieces = path.split("?")
    search = quote(pieces[1], safe=_ESCAPE_SAFE) if len(pieces) > 1 else ""
    return quote(f"{pieces[0]}?{search}" if search else pieces[0], safe=_ENCODE_URI_SAFE)


def signed_headers(
    list_header: str, timestamp_header: str | None, headers: Mapping[str, str]
) -> str:
    """Return Contentful's `name:value;...` list of the headers it says it signed.

    Raises:
        VerificationError: 400 `missing-header` when a listed header is absent, or when the
            list does not cover the timestamp and itself (an unsigned timestamp would make
            the replay window meaningless).
    """
    listed = headers.get(list_header, "")
    names = sorted({name.strip().lower() for name in listed.split(",") if name.strip()})
    required = {list_header} if timestamp_header is None else {list_header, timestamp_header}
    if not required <= set(names) or any(name not in headers for name in names):
        raise VerificationError("missing-header", 400)
    return ";".join(f"{name}:{headers[name].strip()}" for name in names)


def signed_content(
    scheme: HmacScheme,
    raw_body: bytes,
    headers: Mapping[str, str],
    *,
    timestamp: str | None,
    method: str,
    path: str,
) -> bytes:
    """Build the exact bytes the sender signed; `headers` must have lower-case names.

    Raises:
        VerificationError: 400 `missing-header` when a part the template needs is absent.
    """
    parts = {
        "body": raw_body,
        "method": method.upper().encode("utf-8"),
        "path": contentful_path(path).encode("utf-8"),
    }
    if timestamp is not None:
        parts["timestamp"] = timestamp.encode("utf-8")
    if scheme.id_header is not None:
        msg_id = headers.get(scheme.id_header, "").strip()
        if not msg_id:
            raise VerificationError("missing-header", 400)
        parts["id"] = msg_id.encode("utf-8")
    if scheme.signed_headers_header is not None:
        stamp = scheme.timestamp.name if scheme.timestamp is not None else None
        listed = signed_headers(scheme.signed_headers_header, stamp, headers)
        parts["signed_headers"] = listed.encode("utf-8")
    try:
        return render(scheme.content, parts)
    except KeyError:
        raise VerificationError("missing-header", 400) from None
