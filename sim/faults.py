"""Fault rules: which requests misbehave, how often, and for how long.

A rule matches on path regex, method, presented key and agent id; it fires for the next
``times`` matches, with a seeded ``probability``, and only until ``until`` (simulator
clock). What a firing rule *does* to the response lives in ``fault_effects.py``.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import Any

KINDS = (
    "latency",
    "status",
    "rate_limit",
    "stall",
    "reset",
    "bad_json",
    "html_5xx",
    "edge_timeout",
    "drip",
    "stream_error",
)
# Kinds that replace the response; evaluation stops at the first one that fires.
TERMINAL = ("status", "html_5xx", "rate_limit", "edge_timeout")


@dataclass
class FaultRule:
    id: str
    kind: str
    path: str | None = None
    method: str | None = None
    key: str | None = None
    agent_id: str | None = None
    times: int | None = None
    probability: float | None = None
    seconds: float | None = None
    jitter: float | None = None
    status: int | None = None
    retry_after: int | None = 1
    until: float | None = None
    after_headers: bool = False  # reset: drop the connection after the first body bytes
    code: str | None = None  # stream_error: the code after ``[ERROR]``

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RequestFacts:
    """What rules can match on, taken from the incoming request."""

    path: str
    method: str
    key: str | None
    agent_id: str | None


_FIELDS = {
    "kind": str,
    "path": str,
    "method": str,
    "key": str,
    "agent_id": str,
    "times": int,
    "probability": float,
    "seconds": float,
    "jitter": float,
    "status": int,
    "retry_after": int,
    "until": float,
    "after_headers": bool,
    "code": str,
}


def parse_rule(rule_id: str, body: dict[str, Any]) -> FaultRule:
    """Build a rule from an admin request body.

    Raises:
        ValueError: on an unknown kind or field, a bad type or a bad regex.
    """
    for name, value in body.items():
        expected = _FIELDS.get(name)
        if expected is None:
            raise ValueError(f"unknown fault field {name!r}")
        if value is None and name != "kind":
            continue
        numeric = expected is float and isinstance(value, int)
        if isinstance(value, bool) != (expected is bool) or not (
            isinstance(value, expected) or numeric
        ):
            raise ValueError(f"fault field {name!r} must be {expected.__name__}")
    if body.get("kind") not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if body.get("path") is not None:
        re.compile(body["path"])
    return FaultRule(id=rule_id, **body)


class FaultBook:
    """The active rules, in insertion order; callers hold the store lock."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self.rules: list[FaultRule] = []
        self.rng = random.Random(seed + 1)

    def reset(self) -> None:
        self.rules.clear()
        self.rng = random.Random(self._seed + 1)

    def fire(self, facts: RequestFacts, now: float) -> list[FaultRule]:
        """Return the rules that fire for this request, consuming their ``times``.

        Rules are tried in insertion order; delaying and body-altering rules combine, and
        the first rule that replaces the response (``TERMINAL``, or a reset before the
        headers) ends the evaluation, so later rules keep their ``times``.
        """
        fired = []
        for rule in list(self.rules):
            if rule.until is not None and now > rule.until:
                self.rules.remove(rule)
                continue
            if not _matches(rule, facts):
                continue
            if rule.probability is not None and self.rng.random() >= rule.probability:
                continue
            fired.append(rule)
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    self.rules.remove(rule)
            if rule.kind in TERMINAL or (rule.kind == "reset" and not rule.after_headers):
                break
        return fired


def _matches(rule: FaultRule, facts: RequestFacts) -> bool:
    if rule.path is not None and not re.search(rule.path, facts.path):
        return False
    if rule.method is not None and rule.method.upper() != facts.method:
        return False
    if rule.key is not None and rule.key != facts.key:
        return False
    return rule.agent_id is None or rule.agent_id == facts.agent_id
