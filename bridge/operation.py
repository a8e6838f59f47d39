"""The contracts action and trigger modules meet, checked once when the registry is built.

An action module exports KEY, NOUN, LABEL, DESCRIPTION, KIND ("create" or "search"), Input and
Output (marshmallow schemas), SAMPLE (what Output dumps for a typical call), LONG_RUNNING (may
outlive a platform's time limit: accepts `callback_url`, answers 504 with a job id past the
deadline), and `perform(ctx, data)`, which never touches Flask. A trigger module exports KEY,
NOUN, LABEL, DESCRIPTION, EVENT_TYPE, Params (the polling query), Output (one item: the same
shape polled and pushed) and SAMPLE.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from marshmallow import Schema

from bridge.upstream.zappway import ZappWay

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class ActionContext:
    """What `perform` may use: typed ZappWay operations and the connection's document map."""

    zappway: ZappWay
    connection_id: str
    documents: (
        Any  # bridge.documents.service.DocumentMap; Any keeps actions free of storage imports
    )


@dataclass(frozen=True)
class Action:
    key: str
    noun: str
    label: str
    description: str
    kind: str
    input_schema: type[Schema]
    output_schema: type[Schema]
    sample: Any
    long_running: bool
    perform: Callable[[ActionContext, dict[str, Any]], Any]

    @classmethod
    def from_module(cls, module: ModuleType) -> Action:
        """Read a module's standard names; a missing name fails at start-up, not at request time."""
        action = cls(
            key=module.KEY,
            noun=module.NOUN,
            label=module.LABEL,
            description=module.DESCRIPTION,
            kind=module.KIND,
            input_schema=module.Input,
            output_schema=module.Output,
            sample=module.SAMPLE,
            long_running=getattr(module, "LONG_RUNNING", False),
            perform=module.perform,
        )
        if not KEY_PATTERN.match(action.key) or module.__name__.rsplit(".", 1)[-1] != action.key:
            raise ValueError(
                f"action key {action.key!r} must be snake_case and equal its module name"
            )
        if action.kind not in ("create", "search"):
            raise ValueError(f"action {action.key}: KIND must be create or search")
        return action

    @property
    def many(self) -> bool:
        """Searches answer a bare array (what Zapier, Make and n8n expect of a search)."""
        return self.kind == "search"

    def dump(self, result: Any) -> Any:
        return self.output_schema(many=self.many).dump(result)


@dataclass(frozen=True)
class Trigger:
    """A trigger module's standard names: polled at `/v1/triggers/<key>`, pushed by hooks."""

    key: str
    noun: str
    label: str
    description: str
    event_type: str
    params_schema: type[Schema]
    output_schema: type[Schema]
    sample: list[dict[str, Any]]

    @classmethod
    def from_module(cls, module: ModuleType) -> Trigger:
        trigger = cls(
            key=module.KEY,
            noun=module.NOUN,
            label=module.LABEL,
            description=module.DESCRIPTION,
            event_type=module.EVENT_TYPE,
            params_schema=module.Params,
            output_schema=module.Output,
            sample=module.SAMPLE,
        )
        if not KEY_PATTERN.match(trigger.key) or module.__name__.rsplit(".", 1)[-1] != trigger.key:
            raise ValueError(f"trigger key {trigger.key!r} must be snake_case and its module name")
        return trigger
