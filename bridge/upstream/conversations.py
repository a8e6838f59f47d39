"""Reading an agent's conversations from ZappWay, whichever profile it speaks.

Documented: `GET /agents/{id}/conversations?after=&limit=&page=`; whether `after` is inclusive
and in what order items come is unstated, so we ask for `after = watermark - 1 s`, follow pages,
sort by (createdAt, id) ourselves and let the caller's log drop repeats. Legacy: `GET /logs`
pages of 100 by `updatedAt` descending with an id cursor, and no filter by creation time; we
page until a short page or one older than the watermark, re-read the top for rows updated while
we paged (the id cursor skips them), then filter by `createdAt` ourselves.

Answers pass through an allow-list (`Conversation`, `Message`): nothing else of the upstream's
bodies travels further.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.upstream.client import UpstreamClient
from bridge.upstream.errors import UpstreamNotFound, UpstreamProtocolError

PAGE = 100
MAX_PAGES = 20
OVERLAP = timedelta(seconds=1)
LEAD_FIELDS = ("email", "phoneNumber", "firstName", "lastName", "name")


@dataclass(frozen=True)
class Conversation:
    """A conversation as the bridge keeps it: public fields and the visitor's contact only."""

    id: str
    created_at: datetime
    agent_id: str | None
    channel: str | None
    status: str | None
    title: str | None
    visitor_id: str | None
    lead: dict[str, str]


@dataclass(frozen=True)
class Message:
    sender: str  # "human" or "agent"
    text: str | None
    created_at: str


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def since(client: UpstreamClient, agent_id: str, watermark: datetime | None) -> list[Conversation]:
    """The agent's conversations created after `watermark - 1 s`, oldest first, each once."""
    raw = (
        _legacy(client, agent_id, watermark)
        if client.profile == "legacy"
        else _documented(client, agent_id, watermark)
    )
    floor = watermark - OVERLAP if watermark else None
    found: dict[str, Conversation] = {}
    for item in raw:
        conversation = _conversation(item)
        if conversation is not None and (floor is None or conversation.created_at > floor):
            found[conversation.id] = conversation
    return sorted(found.values(), key=lambda c: (c.created_at, c.id))


def messages(client: UpstreamClient, conversation_id: str) -> list[Message] | None:
    """The conversation's messages (the newest 50 the upstream returns), None when it is gone."""
    try:
        body = client.call(
            "GET", "conversation", path_params={"conversation_id": conversation_id},
            idempotent=True,
        )  # fmt: skip
    except UpstreamNotFound:
        return None
    found = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(found, list):
        return None
    return [
        Message(
            sender=str(item.get("from") or ""),
            text=str(item["text"]) if item.get("text") else None,
            created_at=str(item.get("createdAt") or ""),
        )
        for item in found
        if isinstance(item, dict)
    ]


def _conversation(item: Any) -> Conversation | None:
    created = parse_time(item.get("createdAt")) if isinstance(item, dict) else None
    if created is None or not item.get("id"):
        return None
    lead = item.get("lead") if isinstance(item.get("lead"), dict) else {}
    return Conversation(
        id=str(item["id"]),
        created_at=created,
        agent_id=_text(item.get("agentId")),
        channel=_text(item.get("channel")),
        status=_text(item.get("status")),
        title=_text(item.get("title")),
        visitor_id=_text(item.get("visitorId")),
        lead={name: str(lead[name]) for name in LEAD_FIELDS if lead.get(name)},
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _documented(client: UpstreamClient, agent_id: str, watermark: datetime | None) -> list[Any]:
    params: dict[str, Any] = {"limit": PAGE}
    if watermark is not None:
        params["after"] = iso(watermark - OVERLAP)
    items: list[Any] = []
    for page in range(1, MAX_PAGES + 1):
        data, meta = client.call(
            "GET", "conversations", path_params={"agent_id": agent_id},
            params={**params, "page": page}, idempotent=True, keep_meta=True,
        )  # fmt: skip
        if not isinstance(data, list):
            raise UpstreamProtocolError("ZappWay's conversation list is not an array")
        items.extend(data)
        total = meta.get("total") if meta else None
        if len(data) < PAGE or not isinstance(total, int) or len(items) >= total:
            break
    return items


def _legacy(client: UpstreamClient, agent_id: str, watermark: datetime | None) -> list[Any]:
    """Page /logs down to the watermark, then re-read the top for rows that moved meanwhile.

    The id cursor over `updatedAt` order skips a conversation that is updated while a later
    page is pending: it jumps above the cursor to page 1. Everything updated after the first
    page was read sits above that page's newest `updatedAt`, so reading from the top again down
    to it recovers those rows (repeats are dropped by id later).
    """
    items, pages, top = _legacy_scan(client, agent_id, watermark, budget=MAX_PAGES)
    budget = MAX_PAGES - pages
    while pages > 1 and top is not None and budget > 0:
        again, pages, newest = _legacy_scan(client, agent_id, top, budget=budget, above=True)
        items.extend(again)
        budget -= pages
        top = newest or top
    return items


def _legacy_scan(
    client: UpstreamClient,
    agent_id: str,
    floor: datetime | None,
    budget: int,
    above: bool = False,
) -> tuple[list[Any], int, datetime | None]:
    """Read /logs pages from the top until a short page or one reaching below `floor`.

    Returns the items, the number of pages read and the newest `updatedAt` of the first page.
    With `above`, stop at the first page holding a row not updated after `floor`.
    """
    items: list[Any] = []
    cursor: str | None = None
    top: datetime | None = None
    pages = 0
    while pages < budget:
        params = {"agentId": agent_id, **({"cursor": cursor} if cursor else {})}
        data = client.call("GET", "conversations", params=params, idempotent=True)
        pages += 1
        if not isinstance(data, list):
            raise UpstreamProtocolError("ZappWay's conversation log is not an array")
        items.extend(data)
        updated = [u for u in (_updated(c) for c in data) if u]
        if pages == 1:
            top = max(updated, default=None)
        oldest = min(updated, default=None)
        if (
            floor is not None
            and oldest is not None
            and (oldest <= floor if above else oldest < floor)
        ):
            break
        if len(data) < PAGE or not data:
            break
        cursor = str(data[-1].get("id"))
    return items, pages, top


def _updated(conversation: Any) -> datetime | None:
    return parse_time(conversation.get("updatedAt")) if isinstance(conversation, dict) else None
