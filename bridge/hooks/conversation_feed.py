"""Reading an agent's new conversations from ZappWay, whichever profile it speaks.

Documented: `GET /agents/{id}/conversations?after=&limit=&page=`; whether `after` is inclusive
and in what order items come is unstated, so we ask for `after = watermark - 1 s`, follow pages,
sort by (createdAt, id) ourselves and let the event log drop repeats. Legacy: `GET /logs` pages
of 100 by `updatedAt` descending with an id cursor; we page until a short page or one older than
the watermark, re-read the top for rows updated while we paged (the id cursor skips them), then
filter by `createdAt` ourselves (contract B.11).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.upstream.client import UpstreamClient
from bridge.upstream.errors import UpstreamNotFound, UpstreamProtocolError

PAGE = 100
MAX_PAGES = 20
OVERLAP = timedelta(seconds=1)
CONTACT_FIELDS = {
    "email": "email",
    "phoneNumber": "phone_number",
    "firstName": "first_name",
    "lastName": "last_name",
    "name": "name",
}


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


def fetch_since(
    client: UpstreamClient, agent_id: str, watermark: datetime | None
) -> list[dict[str, Any]]:
    """Return the agent's conversations created after `watermark - 1 s`, oldest first."""
    raw = (
        _legacy(client, agent_id, watermark)
        if client.profile == "legacy"
        else _documented(client, agent_id, watermark)
    )
    floor = watermark - OVERLAP if watermark else None
    found: dict[str, dict[str, Any]] = {}
    for item in raw:
        created = parse_time(item.get("createdAt")) if isinstance(item, dict) else None
        if created is None or not item.get("id"):
            continue
        if floor is None or created > floor:
            found[str(item["id"])] = {**item, "_created": created}
    return sorted(found.values(), key=lambda c: (c["_created"], str(c["id"])))


def _documented(client: UpstreamClient, agent_id: str, watermark: datetime | None) -> list[Any]:
    params: dict[str, Any] = {"limit": PAGE}
    if watermark is not None:
        params["after"] = iso(watermark - OVERLAP)
    items: list[Any] = []
    for page in range(1, MAX_PAGES + 1):
        data, meta = client.request(
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
        data = client.request("GET", "conversations", params=params, idempotent=True)
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


def first_message(client: UpstreamClient, conversation_id: str) -> str | None:
    """Return the conversation's earliest human message (the newest 50 are enough for new ones)."""
    try:
        body = client.request(
            "GET", "conversation", path_params={"conversation_id": conversation_id},
            idempotent=True,
        )  # fmt: skip
    except UpstreamNotFound:
        return None
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return None
    human = [m for m in messages if isinstance(m, dict) and m.get("from") == "human"]
    oldest = min(human, key=lambda m: str(m.get("createdAt") or ""), default=None)
    return str(oldest["text"])[:2000] if oldest and oldest.get("text") else None


def to_item(conversation: dict[str, Any], agent_id: str, message: str | None) -> dict[str, Any]:
    """The public shape of a new conversation (polling items and hook payloads alike)."""
    lead: dict[str, Any] = (
        conversation["lead"] if isinstance(conversation.get("lead"), dict) else {}
    )
    contact = {ours: lead[theirs] for theirs, ours in CONTACT_FIELDS.items() if lead.get(theirs)}
    return {
        "id": str(conversation["id"]),
        "created_at": iso(conversation["_created"]),
        "agent_id": str(conversation.get("agentId") or agent_id),
        "channel": conversation.get("channel"),
        "status": conversation.get("status"),
        "title": conversation.get("title"),
        "first_message": message or conversation.get("title"),
        "visitor_id": conversation.get("visitorId"),
        "contact": contact or None,
    }
