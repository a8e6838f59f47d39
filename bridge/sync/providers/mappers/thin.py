"""Storyblok, Directus and GitHub: thin payloads that name documents but omit content.

Upserts are `thin` and carry a `FetchSpec` for the pipeline to run with the source's
credentials. Without a time in the payload, the version is the receive time, so a later
delivery still wins over an earlier one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bridge.sync.providers.errors import MappingError
from bridge.sync.providers.mapping import Change, Event, FetchSpec, literal
from bridge.sync.providers.values import (
    as_dict,
    id_str,
    iso,
    metadata,
    time_ms,
    tombstone_version,
    version,
)

STORYBLOK_CDN = "https://api.storyblok.com/v2/cdn/stories/{id}?token={{token}}"
GITHUB_CONTENTS = "https://api.github.com/repos/{repo}/contents/{path}?ref={ref}"
GITHUB_HEADERS = {
    "Accept": "application/vnd.github.raw+json",
    "Authorization": "Bearer {token}",
    "X-GitHub-Api-Version": "2022-11-28",
}
DIRECTUS_ITEM = "{{base_url}}/items/{collection}/{key}"
DIRECTUS_HEADERS = {"Authorization": "Bearer {token}"}
DIRECTUS_STATUS, DIRECTUS_PUBLISHED = "status", "published"
# The credentials each provider's fetch fills in (its URL and headers above): a source given
# credentials without one of them could never fetch a document.
NEEDED_CREDENTIALS = {"storyblok": ("token",), "directus": ("token", "base_url"),
                      "github": ("token",)}  # fmt: skip


def _received_ms(ev: Event) -> int | None:
    return int(ev.received_at * 1000) if ev.received_at is not None else None


def map_storyblok(ev: Event) -> list[Change]:
    """Map story actions; every upsert is thin and fetched from the CDN API."""
    payload = as_dict(ev.payload)
    if ev.name not in ("published", "moved", "unpublished", "deleted"):
        return []
    story_id = id_str(payload.get("story_id"))
    if story_id is None:
        raise MappingError("missing-id")
    meta = metadata(
        {"space_id": id_str(payload.get("space_id")), "full_slug": payload.get("full_slug")}
    )
    if ev.name in ("unpublished", "deleted"):
        return [
            Change("delete", story_id, tombstone_version(None, ev.received_at, None), metadata=meta)
        ]
    fetch = FetchSpec(STORYBLOK_CDN.format(id=quote(story_id, safe="")))
    return [
        Change("upsert", story_id, version(_received_ms(ev)), metadata=meta, thin=True, fetch=fetch)
    ]


def map_directus(ev: Event) -> list[Change]:
    """Map Flow item events: creates/updates are thin (changed fields only); deletes list keys."""
    payload = as_dict(ev.payload)
    collection, _, action = (ev.name or "").partition(".items.")
    collection = payload.get("collection") or collection
    if action not in ("create", "update", "delete") or not isinstance(collection, str):
        return []
    raw_keys = payload.get("keys") if action != "create" else [payload.get("key")]
    if action == "delete" and not raw_keys:
        raw_keys = payload.get("payload")
    keys = [k for k in map(id_str, raw_keys if isinstance(raw_keys, list) else []) if k]
    if not keys:
        raise MappingError("missing-id")
    fields = as_dict(payload.get("payload"))
    if action == "delete" or fields.get(DIRECTUS_STATUS, DIRECTUS_PUBLISHED) != DIRECTUS_PUBLISHED:
        if action == "create":
            return []  # created as a draft
        stamp = tombstone_version(None, ev.received_at, None)
        return [Change("delete", f"{collection}:{key}", stamp) for key in keys]
    updated = time_ms(fields.get("date_updated"), "iso") or _received_ms(ev)
    title = fields.get("title")
    return [
        Change(
            "upsert",
            f"{collection}:{key}",
            version(updated),
            title=title if isinstance(title, str) else None,
            updated_at=iso(time_ms(fields.get("date_updated"), "iso")),
            metadata=metadata({"collection": collection}),
            thin=True,
            fetch=FetchSpec(_directus_url(collection, key), dict(DIRECTUS_HEADERS)),
        )
        for key in keys
    ]


def _directus_url(collection: str, key: str) -> str:
    return DIRECTUS_ITEM.format(
        collection=literal(quote(collection, safe="")), key=literal(quote(key, safe=""))
    )


def map_github(ev: Event) -> list[Change]:
    """Map a push to the default branch: each file's last state across the pushed commits."""
    payload = as_dict(ev.payload)
    repo = as_dict(payload.get("repository"))
    branch = repo.get("default_branch")
    if ev.name != "push" or payload.get("deleted") or payload.get("ref") != f"refs/heads/{branch}":
        return []
    full_name, after = repo.get("full_name"), payload.get("after")
    if not isinstance(full_name, str) or not isinstance(after, str):
        raise MappingError("missing-id")
    final: dict[str, str] = {}
    for commit in payload.get("commits") or [payload.get("head_commit") or {}]:
        for op, key in (("upsert", "added"), ("upsert", "modified"), ("delete", "removed")):
            for path in as_dict(commit).get(key) or []:
                final[path] = op
    at = time_ms(as_dict(payload.get("head_commit")).get("timestamp"), "iso")
    stamp = version(at or _received_ms(ev))
    return [
        _github_change(repo, full_name, after, str(branch), path, op, stamp, at)
        for path, op in final.items()
    ]


def _github_change(
    repo: dict[str, Any],
    full_name: str,
    sha: str,
    branch: str,
    path: str,
    op: str,
    stamp: str,
    at: int | None,
) -> Change:
    cms_id = f"{full_name}:{path}"
    meta = metadata({"repository": full_name, "path": path, "commit": sha})
    if op == "delete":
        return Change("delete", cms_id, stamp, metadata=meta)
    url = GITHUB_CONTENTS.format(
        repo=literal(full_name), path=literal(quote(path)), ref=literal(quote(sha, safe=""))
    )
    html_url = repo.get("html_url")
    return Change(
        "upsert",
        cms_id,
        stamp,
        title=path,  # a raw file has no title of its own; its path is what a reader knows it by
        url=f"{html_url}/blob/{branch}/{quote(path)}" if isinstance(html_url, str) else None,
        updated_at=iso(at),
        metadata=meta,
        thin=True,
        fetch=FetchSpec(url, dict(GITHUB_HEADERS)),
    )
