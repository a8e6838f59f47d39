"""Follow-up reads for thin CMS payloads: the content a webhook named but did not carry.

Storyblok, Directus updates and GitHub pushes send ids only; their mappers leave a `FetchSpec`
(URL and header templates). Here the worker fills in the source's own CMS credentials, makes
one bounded, SSRF-checked GET through the outbound client, and reduces the answer to a document:
Storyblok's `{story}` (name and component tree), Directus's `{data}` item, any other JSON by
its text fields, HTML reduced to its text, and raw text (GitHub's raw files) as is. This runs
in the worker, never in the request.

A `base_url` credential also moves the hosted APIs (Storyblok's CDN, GitHub's REST API) to
the user's own host: a regional Storyblok API or a GitHub Enterprise server (`.../api/v3`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bridge.infra import jsontext, netguard
from bridge.infra.backoff import parse_retry_after
from bridge.infra.outbound import (
    DeadlinePassed,
    MalformedURL,
    OutboundClient,
    TooLarge,
    TransportFailed,
)
from bridge.sync.providers.mapping import FetchSpec
from bridge.sync.providers.text import html_to_text, normalise

FETCH_CAP = 4 * 1024 * 1024
NOT_TEXT_KEYS = frozenset({"id", "uuid", "type", "component", "status", "slug", "full_slug",
                           "lang", "sort", "user_created", "user_updated", "plugin", "fieldtype",
                           "linktype", "cached_url", "filename", "alt_text"})  # fmt: skip
TITLE_KEYS = ("title", "name", "headline")
RAW_MARK = ".raw"  # GitHub labels a raw file `application/vnd.github.raw+json`, yet it is not JSON


class FetchFailed(Exception):
    """The CMS read failed; `final` when waiting will not help (no credentials, 404, 401)."""

    def __init__(self, reason: str, *, final: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.final = final
        self.retry_after = retry_after


@dataclass(frozen=True)
class Fetched:
    title: str | None
    text: str
    updated_at: str | None


def fetch(client: OutboundClient, spec: dict[str, Any], credentials: dict[str, str]) -> Fetched:
    """Read the document a thin payload named.

    Raises:
        FetchFailed: credentials missing, target unsafe, CMS error or unusable answer.
    """
    template = spec["url_template"]
    try:
        url, headers = FetchSpec(template, spec.get("headers_template", {})).render(credentials)
    except KeyError as exc:
        raise FetchFailed(
            f"thin payload: set the source's CMS credential {exc.args[0]!r} so the bridge "
            "can fetch the content",
            final=True,
        ) from exc
    if credentials.get("base_url") and "{base_url}" not in template:
        url = _rebased(url, credentials["base_url"])
    try:
        answer = client.request("GET", url, headers=headers, cap=FETCH_CAP)
    except netguard.UnsafeTarget as exc:
        raise FetchFailed(f"CMS fetch refused: {exc}", final=True) from exc
    except MalformedURL as exc:
        raise FetchFailed("CMS fetch refused: the URL is malformed", final=True) from exc
    except TooLarge as exc:
        raise FetchFailed("CMS answer larger than 4 MB", final=True) from exc
    except TransportFailed as exc:
        raise FetchFailed(f"CMS fetch failed: {exc.kind}", final=False) from exc
    except DeadlinePassed as exc:
        raise FetchFailed("CMS fetch failed: DeadlinePassed", final=False) from exc
    if answer.status == 429 or answer.status >= 500:
        raise FetchFailed(
            f"CMS answered {answer.status}",
            final=False,
            retry_after=parse_retry_after(answer.headers.get("retry-after")),
        )
    if answer.status != 200:
        raise FetchFailed(f"CMS answered {answer.status}", final=True)
    return _document(answer.headers.get("content-type", ""), answer.body)


def _rebased(url: str, base_url: str) -> str:
    """The same path and query on the user's host (`base_url` may carry a path prefix)."""
    parts = urlsplit(url)
    query = f"?{parts.query}" if parts.query else ""
    return base_url.rstrip("/") + parts.path + query


def _document(content_type: str, body: bytes) -> Fetched:
    text = body.decode("utf-8", errors="replace")
    kind = content_type.split(";")[0].strip().lower()
    if "html" in kind:
        return Fetched(None, html_to_text(text), None)
    if "json" not in kind or RAW_MARK in kind:  # Markdown or code: `<T>` is text, not a tag
        return Fetched(None, normalise(text), None)
    try:
        payload = jsontext.loads(text, max_depth=jsontext.INBOUND_DEPTH, repair=True)
    except jsontext.JsonTooDeep as exc:
        detail = f"CMS answered JSON nested deeper than {jsontext.INBOUND_DEPTH} levels"
        raise FetchFailed(detail, final=True) from exc
    except ValueError as exc:
        raise FetchFailed("CMS answered malformed JSON", final=True) from exc
    item = payload
    if isinstance(payload, dict):
        item = payload.get("story") or payload.get("data") or payload
    if not isinstance(item, dict):
        return Fetched(None, _text_of(item), None)
    title = next((item[k] for k in TITLE_KEYS if isinstance(item.get(k), str)), None)
    updated = next(
        (item[k] for k in ("published_at", "updated_at", "date_updated") if item.get(k)), None
    )
    body_fields = {k: v for k, v in item.items() if k not in TITLE_KEYS}
    return Fetched(title, _text_of(body_fields), updated if isinstance(updated, str) else None)


def _text_of(node: Any) -> str:
    """Every human text in a JSON tree, HTML reduced, in document order."""
    parts: list[str] = []

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, dict):
            for name, child in value.items():
                if not name.startswith("_") and name not in NOT_TEXT_KEYS:
                    walk(child, name)
        elif isinstance(value, list):
            for child in value:
                walk(child, key)
        elif isinstance(value, str) and not _looks_like_data(key, value):
            parts.append(html_to_text(value))

    walk(node, None)
    return normalise("\n".join(parts))


def _looks_like_data(key: str | None, value: str) -> bool:
    """Dates, ids and URLs are not text a reader would search for."""
    if key and (key.startswith("date_") or key.endswith(("_at", "_id", "_url", "url"))):
        return True
    return value.startswith(("http://", "https://")) and " " not in value
