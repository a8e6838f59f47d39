"""Contentful, Strapi and Ghost: headless CMSs whose payloads carry the whole entry."""

from __future__ import annotations

from typing import Any

from bridge.sync.providers.errors import MappingError
from bridge.sync.providers.mapping import Change, Event
from bridge.sync.providers.text import body_text
from bridge.sync.providers.values import (
    as_dict,
    id_str,
    iso,
    metadata,
    time_ms,
    tombstone_version,
    version,
)

_TITLE_FIELDS = ("title", "name", "headline")
_BODY_FIELDS = ("body", "content", "text", "description")
_CONTENTFUL_DELETES = frozenset({"unpublish", "delete", "archive"})


def _first(source: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((source[n] for n in names if source.get(n) not in (None, "", [])), None)


def _locale_value(field: Any) -> tuple[Any, str | None]:
    """Contentful fields are `{locale: value}`; prefer en-US, else the first locale."""
    if not isinstance(field, dict) or not field:
        return None, None
    locale = "en-US" if "en-US" in field else next(iter(field))
    return field[locale], locale


def _link_id(sys: dict[str, Any], name: str) -> str | None:
    link = sys.get(name)
    return id_str(link.get("sys", {}).get("id")) if isinstance(link, dict) else None


def map_contentful(ev: Event) -> list[Change]:
    """Map Entry publish (upsert) and unpublish/delete/archive (tombstones); drafts are ignored."""
    parts = (ev.name or "").split(".")
    payload = as_dict(ev.payload)
    sys = as_dict(payload.get("sys"))
    if len(parts) != 3 or parts[1] != "Entry":
        return []
    entry_id = id_str(sys.get("id"))
    if entry_id is None:
        raise MappingError("missing-id")
    space, env = _link_id(sys, "space"), _link_id(sys, "environment") or "master"
    cms_id = f"{space}:{env}:{entry_id}"
    updated = time_ms(sys.get("updatedAt"), "iso")
    if parts[2] in _CONTENTFUL_DELETES:
        at = time_ms(sys.get("deletedAt") or sys.get("archivedAt") or sys.get("updatedAt"), "iso")
        return [Change("delete", cms_id, tombstone_version(at, ev.received_at, None))]
    if parts[2] != "publish":
        return []
    fields = as_dict(payload.get("fields"))
    title, locale = _locale_value(_first(fields, _TITLE_FIELDS))
    body, _ = _locale_value(_first(fields, _BODY_FIELDS))
    slug, _ = _locale_value(fields.get("slug"))
    seq = sys.get("version") or sys.get("revision") or 0
    return [
        Change(
            "upsert",
            cms_id,
            version(updated, seq if isinstance(seq, int) else 0),
            title=title if isinstance(title, str) else None,
            text=body_text(body),
            updated_at=iso(updated),
            metadata=metadata(
                {
                    "space_id": space,
                    "environment_id": env,
                    "content_type": _link_id(sys, "contentType"),
                    "locale": locale,
                    "slug": slug,
                }
            ),
        )
    ]


def map_strapi(ev: Event) -> list[Change]:
    """Map `entry.*` events; v5 draft saves (`publishedAt` null) are ignored."""
    payload = as_dict(ev.payload)
    entry = as_dict(payload.get("entry"))
    kind, _, action = (ev.name or "").partition(".")
    if kind != "entry":
        return []
    doc_id = id_str(entry.get("documentId")) or id_str(entry.get("id"))
    model = payload.get("uid") or payload.get("model")
    if doc_id is None or not isinstance(model, str):
        raise MappingError("missing-id")
    cms_id = f"{model}:{doc_id}"
    updated = time_ms(entry.get("updatedAt"), "iso")
    if action in ("unpublish", "delete"):
        at = time_ms(payload.get("createdAt"), "iso")
        return [Change("delete", cms_id, tombstone_version(at, ev.received_at, updated))]
    draft = "publishedAt" in entry and entry["publishedAt"] is None
    if action not in ("publish", "create", "update") or (action != "publish" and draft):
        return []
    title = _first(entry, _TITLE_FIELDS)
    return [
        Change(
            "upsert",
            cms_id,
            version(updated),
            title=title if isinstance(title, str) else None,
            text=body_text(_first(entry, _BODY_FIELDS)),
            updated_at=iso(updated),
            metadata=metadata(
                {"model": model, "slug": entry.get("slug"), "locale": entry.get("locale")}
            ),
        )
    ]


def map_ghost(ev: Event) -> list[Change]:
    """Map a Ghost post or page event from its status change; Ghost sends no event name."""
    payload = as_dict(ev.payload)
    kind = "post" if isinstance(payload.get("post"), dict) else "page"
    wrapper = as_dict(payload.get(kind))
    current = as_dict(wrapper.get("current"))
    previous = as_dict(wrapper.get("previous"))
    cms_id = id_str(current.get("id")) or id_str(previous.get("id"))
    if cms_id is None:
        raise MappingError("missing-id")
    updated = time_ms(current.get("updated_at"), "iso")
    if not current:  # post.deleted: the post survives only in `previous`
        last = time_ms(previous.get("updated_at"), "iso")
        return [Change("delete", cms_id, tombstone_version(None, ev.received_at, last))]
    if current.get("status") != "published":
        if previous.get("status") != "published":
            return []  # a draft was edited: nothing public changed
        return [Change("delete", cms_id, tombstone_version(updated, ev.received_at, None))]
    html = current.get("html")
    return [
        Change(
            "upsert",
            cms_id,
            version(updated),
            title=current.get("title"),
            text=body_text(current.get("plaintext")) or body_text(html),
            url=current.get("url"),
            updated_at=iso(updated),
            metadata=metadata({"kind": kind, "slug": current.get("slug")}),
        )
    ]
