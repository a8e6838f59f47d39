"""Query Agent: send a message to a ZappWay agent and return its answer.

A conversation id continues a conversation. When the conversation is in human takeover the
upstream stores the message without answering: that is reported as status "human_takeover"
with a null answer, never as an empty success.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from bridge.operation import ActionContext
from bridge.schemas import ToolInput, zappway_id

KEY = "query_agent"
NOUN = "Answer"
LABEL = "Query Agent"
DESCRIPTION = "Sends a message to a ZappWay agent and returns its answer and sources."
KIND = "create"
LONG_RUNNING = True

MODELS = (
    "gpt_3_5_turbo", "gpt_3_5_turbo_16k", "gpt_4", "gpt_4_32k", "gpt_4_turbo",
    "gpt_4_turbo_vision", "gpt_4o", "claude_3_haiku", "claude_3_sonnet", "claude_3_opus",
    "mixtral_8x7b", "mixtral_8x22b", "dolphin_mixtral_8x7b",
)  # fmt: skip
# Input name -> upstream field name, for the optional settings forwarded as given.
FORWARDED = {
    "conversation_id": "conversationId",
    "visitor_id": "visitorId",
    "temperature": "temperature",
    "model_name": "modelName",
    "max_tokens": "maxTokens",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
    "top_p": "topP",
    "system_prompt": "systemPrompt",
    "user_prompt": "userPrompt",
    "context": "context",
}


class Contact(ToolInput):
    email = fields.Email()
    phone_number = fields.String(validate=validate.Length(max=50))
    first_name = fields.String(validate=validate.Length(max=100))
    last_name = fields.String(validate=validate.Length(max=100))
    user_id = fields.String(validate=validate.Length(max=200), metadata={
        "description": "Your own id for this person."
    })  # fmt: skip


def _help(text: str) -> dict[str, str]:
    return {"description": text}


class Input(ToolInput):
    agent_id = zappway_id(required=True, metadata=_help("The agent to ask."))
    query = fields.String(
        required=True, validate=validate.Length(min=1, max=20_000),
        metadata=_help("The message to send to the agent."),
    )  # fmt: skip
    conversation_id = zappway_id(metadata=_help(
        "Continue this conversation (an earlier answer's conversation_id). Empty starts a new "
        "one, which also fires New Conversation."
    ))  # fmt: skip
    visitor_id = zappway_id(metadata=_help("ZappWay's id of the person asking, if known."))
    temperature = fields.Float(
        validate=validate.Range(min=0, max=1), metadata=_help("0 to 1; overrides the agent's.")
    )
    model_name = fields.String(
        validate=validate.OneOf(MODELS), metadata=_help("Overrides the agent's model.")
    )
    max_tokens = fields.Integer(
        validate=validate.Range(min=1, max=200_000), metadata=_help("Longest answer, in tokens.")
    )
    presence_penalty = fields.Float(
        validate=validate.Range(min=-2, max=2), metadata=_help("-2 to 2; overrides the agent's.")
    )
    frequency_penalty = fields.Float(
        validate=validate.Range(min=-2, max=2), metadata=_help("-2 to 2; overrides the agent's.")
    )
    top_p = fields.Float(
        validate=validate.Range(min=0, max=1), metadata=_help("0 to 1; overrides the agent's.")
    )
    system_prompt = fields.String(
        validate=validate.Length(max=20_000), metadata=_help("Replaces the agent's system prompt.")
    )
    user_prompt = fields.String(
        validate=validate.Length(max=20_000), metadata=_help("Replaces the agent's user prompt.")
    )
    context = fields.String(
        validate=validate.Length(max=50_000), metadata=_help("Extra context sent with the query.")
    )
    contact = fields.Nested(Contact, metadata=_help("Who is asking; kept with the conversation."))
    callback_url = fields.Url(
        schemes={"http", "https"},
        require_tld=False,
        metadata={"description": "Zapier callback / n8n or Pipedream resume URL: answer later."},
    )


class Source(Schema):
    chunk_id = fields.String(allow_none=True)
    datasource_id = fields.String(allow_none=True)
    datasource_name = fields.String(allow_none=True)
    datasource_type = fields.String(allow_none=True)
    source_url = fields.String(allow_none=True)
    page_number = fields.Integer(allow_none=True)
    total_pages = fields.Integer(allow_none=True)
    mime_type = fields.String(allow_none=True)
    score = fields.Float(allow_none=True)


class Usage(Schema):
    completionTokens = fields.Integer(allow_none=True)
    promptTokens = fields.Integer(allow_none=True)
    totalTokens = fields.Integer(allow_none=True)
    cost = fields.Float(allow_none=True)


class Output(Schema):
    answer = fields.String(allow_none=True, required=True)
    status = fields.String(required=True, validate=validate.OneOf(
        ("answered", "human_takeover", "pending_approval")
    ))  # fmt: skip
    conversation_id = fields.String(allow_none=True, required=True)
    visitor_id = fields.String(allow_none=True, required=True)
    message_id = fields.String(allow_none=True, required=True)
    sources = fields.List(fields.Nested(Source), required=True)
    usage = fields.Nested(Usage, required=True)


SAMPLE = {
    "answer": "Our return window is 30 days.",
    "status": "answered",
    "conversation_id": "clconv0000000000000000001",
    "visitor_id": "clvis00000000000000000001",
    "message_id": "clmsg00000000000000000002",
    "sources": [
        {
            "datasource_id": "clds000000000000000000001",
            "datasource_name": "Returns FAQ",
            "source_url": "https://example.com/returns",
            "score": 0.83,
        }
    ],
    "usage": {"completionTokens": 40, "promptTokens": 900, "totalTokens": 940, "cost": 0.0005},
}


def perform(ctx: ActionContext, data: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"query": data["query"]}
    body.update({upstream: data[name] for name, upstream in FORWARDED.items() if name in data})
    if data.get("contact"):
        contact = data["contact"]
        body["contact"] = {
            "email": contact.get("email"),
            "phoneNumber": contact.get("phone_number"),
            "firstName": contact.get("first_name"),
            "lastName": contact.get("last_name"),
            "userId": contact.get("user_id"),
        }
    reply = ctx.zappway.query_agent(data["agent_id"], body)
    if reply["answer"] is None:
        status = "human_takeover"
    elif reply["answer"] == "" and reply["pending_approvals"]:
        status = "pending_approval"
    else:
        status = "answered"
    return {
        "answer": reply["answer"],
        "status": status,
        "conversation_id": reply["conversation_id"],
        "visitor_id": reply["visitor_id"],
        "message_id": reply["message_id"],
        "sources": reply["sources"],
        "usage": reply["usage"],
    }
