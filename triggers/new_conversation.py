"""New Conversation: fires when a visitor starts a conversation with a ZappWay agent.

Polling and REST hooks read the same event log, so an item has the same `id` (the ZappWay
conversation id, a public contract: Zapier deduplicates on it) whichever way it arrives.
"""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from bridge.schemas import ToolInput, zappway_id

KEY = "new_conversation"
NOUN = "Conversation"
LABEL = "New Conversation"
DESCRIPTION = "Triggers when a new conversation starts with a ZappWay agent."
EVENT_TYPE = "new_conversation"


class Params(ToolInput):
    """Query parameters of the polling endpoint."""

    agent_id = zappway_id(required=True, metadata={"description": "The agent to watch."})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))
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
