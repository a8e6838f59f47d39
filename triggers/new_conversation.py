"""New Conversation: fires when a visitor starts a conversation with a ZappWay agent.

Polling and REST hooks read the same event log, so an item has the same `id` (the ZappWay
conversation id, a public contract: Zapier deduplicates on it) whichever way it arrives. This
module owns what is detected (`detect`: conversations begun since the watch's cursor) and the
item's shape (`render`); the bridge's detection runs it for every watched agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, fields

from bridge.operation import Detected
from bridge.schemas import ToolInput, integer, zappway_id

if TYPE_CHECKING:
    from bridge.upstream.conversations import Conversation, Message
    from bridge.upstream.zappway import ZappWay

KEY = "new_conversation"
NOUN = "Conversation"
LABEL = "New Conversation"
DESCRIPTION = "Triggers when a new conversation starts with a ZappWay agent."
EVENT_TYPE = "new_conversation"
MESSAGE_LOOKUPS = 20  # per read, the newest ones: each costs one call from the key's budget
CONTACT_FIELDS = {
    "email": "email",
    "phoneNumber": "phone_number",
    "firstName": "first_name",
    "lastName": "last_name",
    "name": "name",
}


class Params(ToolInput):
    """Query parameters of the polling endpoint."""

    agent_id = zappway_id(required=True, metadata={"description": "The agent to watch."})
    limit = integer(1, 100, load_default=50)
    since = fields.AwareDateTime(metadata={"description": "Only conversations created after this."})
    after_id = zappway_id(metadata={"description": "Only conversations newer than this id."})
    sample = fields.Boolean(load_default=False)


class Contact(Schema):
    email = fields.String(allow_none=True)
    phone_number = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    name = fields.String(allow_none=True)


class Output(Schema):
    id = fields.String(required=True)
    created_at = fields.String(required=True)
    agent_id = fields.String(required=True)
    channel = fields.String(allow_none=True, required=True)
    status = fields.String(allow_none=True, required=True)
    title = fields.String(allow_none=True, required=True)
    first_message = fields.String(allow_none=True, required=True)
    visitor_id = fields.String(allow_none=True, required=True)
    contact = fields.Nested(Contact, allow_none=True, required=True)
    is_sample = fields.Boolean()


SAMPLE = [
    {
        "id": "clconv0000000000000000010",
        "created_at": "2026-05-02T10:04:11Z",
        "agent_id": "clagent00000000000000001",
        "channel": "api",
        "status": "UNRESOLVED",
        "title": "Refund?",
        "first_message": "What is your return policy?",
        "visitor_id": "clvis00000000000000000001",
        "contact": {"email": "ada@example.com"},
    }
]


def detect(zappway: ZappWay, agent_id: str, since: datetime | None) -> list[Detected]:
    """Conversations the agent began after `since` (less a second), oldest first."""
    return [Detected(c.id, c.created_at, c) for c in zappway.conversations_since(agent_id, since)]


def render(zappway: ZappWay, agent_id: str, found: Sequence[Detected]) -> list[dict[str, Any]]:
    """The items for what `detect` found, in the same order; the newest few get their first
    message looked up (older ones show the title instead)."""
    items = []
    for index, detected in enumerate(found):
        conversation: Conversation = detected.data
        message = None
        if index >= len(found) - MESSAGE_LOOKUPS:
            message = first_message(zappway.conversation_messages(conversation.id))
        items.append(to_item(conversation, agent_id, message))
    return items


def first_message(messages: list[Message] | None) -> str | None:
    """The visitor's earliest message (the newest 50 the upstream returns hold it for new ones)."""
    human = [m for m in messages or () if m.sender == "human" and m.text]
    oldest = min(human, key=lambda m: m.created_at, default=None)
    return oldest.text[:2000] if oldest and oldest.text else None


def to_item(conversation: Conversation, agent_id: str, message: str | None) -> dict[str, Any]:
    """The public shape of a new conversation (polling items and hook payloads alike)."""
    contact = {ours: conversation.lead[theirs] for theirs, ours in CONTACT_FIELDS.items()
               if conversation.lead.get(theirs)}  # fmt: skip
    return {
        "id": conversation.id,
        "created_at": conversation.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "agent_id": conversation.agent_id or agent_id,
        "channel": conversation.channel,
        "status": conversation.status,
        "title": conversation.title,
        "first_message": message or conversation.title,
        "visitor_id": conversation.visitor_id,
        "contact": contact or None,
    }
