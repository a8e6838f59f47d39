"""Turn one verified webhook payload into document changes for the pipeline.

`map_event` returns a list: one event may touch several documents (a GitHub push, a
Directus `keys[]` delete) and ignored events (drafts, autosaves, other topics) yield `[]`.
`delivery_key` is the per-provider dedupe key of webhooks.md table 4a. The pipeline
derives the upstream document id from (source, `cms_id`) and orders writes by `version`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from bridge.sync.providers.generic import FieldMap, GenericConfig
from bridge.sync.providers.values import Scalar, lookup, part_text

if TYPE_CHECKING:
    from bridge.sync.providers.providers import Provider

Op = Literal["upsert", "delete"]
_VERBATIM = frozenset({"base_url"})


@dataclass(frozen=True)
class FetchSpec:
    """A follow-up read from the CMS for a thin payload; the pipeline runs it.

    Templates hold `{token}` / `{base_url}` placeholders for the source's credentials;
    everything else (ids, paths) is already filled in and brace-escaped.
    """

    url_template: str
    headers_template: Mapping[str, str] = field(default_factory=dict)

    def render(self, credentials: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """Return the URL and headers with credentials filled in (URL values are quoted).

        Raises:
            KeyError: a placeholder has no credential.
        """
        in_url = {k: v if k in _VERBATIM else quote(v, safe="") for k, v in credentials.items()}
        url = self.url_template.format_map(in_url)
        return url, {k: v.format_map(credentials) for k, v in self.headers_template.items()}


@dataclass(frozen=True)
class Change:
    """One document-level effect of a webhook: upsert content or leave a versioned tombstone."""

    op: Op
    cms_id: str
    version: str
    title: str | None = None
    text: str | None = None
    url: str | None = None
    updated_at: str | None = None
    metadata: dict[str, Scalar] = field(default_factory=dict)
    thin: bool = False
    fetch: FetchSpec | None = None
    no_text: str | None = None  # an upsert without text: what to map (its dead letter's reason)


@dataclass(frozen=True)
class Event:
    """What a mapper sees: the parsed payload, lower-case headers and the resolved settings."""

    payload: Any
    headers: Mapping[str, str]
    name: str | None
    fields: FieldMap | None
    received_at: float | None


def literal(value: str) -> str:
    """Escape braces so a CMS value survives `str.format` in a FetchSpec template."""
    return value.replace("{", "{{").replace("}", "}}")


def _fields(provider: Provider, config: GenericConfig | None) -> FieldMap | None:
    if provider.fields is None and provider.scheme is not None:
        return None  # a bespoke mapper; configs only steer field-mapped providers
    return config.mapping if config is not None else provider.fields


def event_name(
    provider: Provider,
    payload: Any,
    headers: Mapping[str, str],
    config: GenericConfig | None = None,
    route_event: str | None = None,
) -> str | None:
    """Return the event name where this provider puts it (header or body), else the inbound
    URL's event suffix (`/in/<token>/<event>`), if any.

    The suffix is how a sender that names no event (WP Webhooks without a configured header,
    Ghost) still says which trigger fired: the user gives each trigger its own URL.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    fields = _fields(provider, config)
    source = fields.event if fields is not None else provider.event
    sources = () if source is None else source if isinstance(source, tuple) else (source,)
    for one in sources:
        value = lookup(one, payload, lower)
        if isinstance(value, str) and value:
            return value
    return route_event


def map_event(
    provider: Provider,
    payload: Any,
    headers: Mapping[str, str],
    config: GenericConfig | None = None,
    *,
    received_at: float | None = None,
    route_event: str | None = None,
) -> list[Change]:
    """Return the changes one verified payload describes (`[]` for ignored events).

    Only JSON objects describe documents; any other payload maps to `[]`.

    `received_at` (Unix seconds, the same clock as `verify`'s `now`) versions deletes
    whose payload carries no event time, so the tombstone still beats older updates.
    `route_event` is the inbound URL's event suffix, used when the payload names no event.

    Raises:
        MappingError: the payload lacks a field the provider always sends.
    """
    if not isinstance(payload, dict):
        return []  # pings and form posts (WooCommerce's `webhook_id=..`) carry no document
    lower = {k.lower(): v for k, v in headers.items()}
    name = event_name(provider, payload, lower, config, route_event)
    fields = _fields(provider, config)
    return provider.mapper(Event(payload, lower, name, fields, received_at))


def delivery_key(
    provider: Provider,
    payload: Any,
    headers: Mapping[str, str],
    config: GenericConfig | None = None,
    *,
    route_event: str | None = None,
) -> str | None:
    """Return the provider's dedupe key for this delivery, or None if no recipe applies.

    The first recipe whose parts are all present wins (e.g. Contentful's idempotency
    header, else `sys.id` + version + topic); the parts are hashed to a fixed length.
    The inbound URL's event suffix is part of the key: WordPress sends the same post, with
    the same modified time, to its update and its delete URLs, and the delete must not be
    dropped as a repeat of the update.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    recipes = provider.dedupe
    if config is not None and provider.scheme is None:
        mapping = config.mapping
        fallback = tuple(p for p in (mapping.id, mapping.updated, mapping.event) if p)
        recipes = (config.dedupe, fallback) if config.dedupe else (fallback,)
    for recipe in recipes:
        parts = [lookup(source, payload, lower) for source in recipe]
        if recipe and all(part not in (None, "", [], {}) for part in parts):
            if route_event is not None:
                parts.append(f"route:{route_event}")
            joined = "\x1f".join(part_text(part) for part in parts)
            return f"{provider.key}:{hashlib.sha256(joined.encode('utf-8')).hexdigest()}"
    return None
