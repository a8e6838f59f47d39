"""In-memory records of the fake upstream: organisations, keys, agents, documents, chats.

Times are epoch seconds from the simulator clock; ``render.py`` turns records into the
JSON shapes the upstream API answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PLAN_LIMITS = {"free": 60, "pro": 300}
PLAN_LEVELS = {"free": "level_0", "pro": "level_2"}
PLAN_QUOTAS = {"free": 100, "pro": 5000}
CUSTOM_QUOTA = 100_000


@dataclass
class Org:
    id: str
    name: str
    plan: str | int  # "free", "pro", or a custom requests-per-minute figure
    created_at: float

    @property
    def rate_limit(self) -> int:
        return self.plan if isinstance(self.plan, int) else PLAN_LIMITS[self.plan]

    @property
    def monthly_quota(self) -> int:
        return CUSTOM_QUOTA if isinstance(self.plan, int) else PLAN_QUOTAS[self.plan]


@dataclass
class ApiKey:
    key: str
    org_id: str
    created_at: float
    rate_limit: int | None = None  # overrides the org plan when set
    revoked: bool = False


@dataclass
class Agent:
    id: str
    org_id: str
    name: str
    created_at: float
    seq: int
    visibility: str = "private"
    handle: str | None = None
    description: str = ""
    model_name: str = "gpt_4o"
    datastore_ids: list[str] = field(default_factory=list)
    pending_approval: bool = False


@dataclass
class Datastore:
    id: str
    org_id: str
    name: str
    created_at: float
    seq: int
    visibility: str = "private"
    description: str = ""


@dataclass
class Document:
    """One upstream datasource; ``external_id`` is the documented profile's upsert key."""

    id: str
    datastore_id: str
    name: str
    text: str
    created_at: float
    updated_at: float
    seq: int
    indexing_started: float
    indexing_delay: float
    indexing_result: str
    metadata: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = None

    def status(self, now: float) -> str:
        """Return ``pending``, ``running``, then the final result once the delay has passed."""
        elapsed = now - self.indexing_started
        if elapsed >= self.indexing_delay:
            return self.indexing_result
        return "pending" if elapsed < self.indexing_delay / 2 else "running"


@dataclass
class Message:
    id: str
    conversation_id: str
    text: str
    sender: str  # "human" | "agent"
    created_at: float
    input_id: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)
    approvals: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Conversation:
    id: str
    org_id: str
    agent_id: str
    visitor_id: str
    created_at: float
    updated_at: float
    channel: str = "api"
    status: str = "UNRESOLVED"
    priority: str = "MEDIUM"
    title: str | None = None
    ai_enabled: bool = True
    lead: dict[str, Any] | None = None
    messages: list[Message] = field(default_factory=list)  # oldest first


@dataclass
class Usage:
    """Per-org counters; ``agent_queries`` is weighted by model cost and resets monthly."""

    month: str = ""
    agent_queries: int = 0
    datastore_queries: int = 0
    uploaded_bytes: int = 0
    model_tokens: int = 0
