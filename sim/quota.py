"""Monthly agent-query quota per organisation, weighted by model cost (as legacy counts it)."""

from __future__ import annotations

from .clock import month_of
from .models import Org, Usage

MODEL_WEIGHTS = {
    "gpt_3_5_turbo": 1,
    "gpt_3_5_turbo_16k": 2,
    "gpt_4": 30,
    "gpt_4_32k": 60,
    "gpt_4_turbo": 13,
    "gpt_4_turbo_vision": 13,
    "gpt_4o": 5,
    "claude_3_haiku": 1,
    "claude_3_sonnet": 5,
    "claude_3_opus": 30,
    "mixtral_8x7b": 1,
    "mixtral_8x22b": 2,
    "dolphin_mixtral_8x7b": 1,
}


def weight(model_name: str) -> int:
    """Return the quota cost of one query; unknown models cost 1 (nothing validates them)."""
    return MODEL_WEIGHTS.get(model_name, 1)


def current(usage: Usage, now: float) -> Usage:
    """Roll the counters over when a new month has started; return the same object."""
    month = month_of(now)
    if usage.month != month:
        usage.month = month
        usage.agent_queries = 0
        usage.datastore_queries = 0
    return usage


def exhausted(usage: Usage, org: Org, quota_override: int | None, now: float) -> bool:
    """Say whether the org has used its monthly quota (the ancestor compares with ``>=``)."""
    quota = quota_override if quota_override is not None else org.monthly_quota
    return current(usage, now).agent_queries >= quota
