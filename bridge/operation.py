"""The contracts action and trigger modules meet, checked once when the registry is built.

An action module exports KEY, NOUN, LABEL, DESCRIPTION, KIND ("create" or "search"), Input and
Output (marshmallow schemas), SAMPLE (what Output dumps for a typical call), LONG_RUNNING (may
outlive a platform's time limit: accepts `callback_url`, answers 504 with a job id past the
deadline), and `perform(ctx, data)`, which never touches Flask or storage: it gets typed
ZappWay operations and the connection's documents through `ActionContext`.

A trigger module exports KEY, NOUN, LABEL, DESCRIPTION, EVENT_TYPE, Params (the polling query),
Output (one item: the same shape polled and pushed), SAMPLE, `detect(zappway, agent_id, since)`
(what happened upstream since a watch's cursor, oldest first) and `render(zappway, agent_id,
detected)` (the items, in the same order). Detection (`bridge.hooks.detection`) runs them for
every watched agent, so a new trigger needs no change there.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from marshmallow import Schema, missing

if TYPE_CHECKING:
    from bridge.upstream.zappway import ZappWay

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class UpsertOutcome:
    """What became of one upserted document: its ids and whether it was sent."""

    id: str | None
    upstream_id: str
    status: str  # created | updated | unchanged


class Documents(Protocol):
    """A connection's datastore documents, keyed by the caller's own ids (`bridge.documents`)."""

    def upsert(self, datastore_id: str, documents: list[dict[str, Any]]) -> list[UpsertOutcome]:
        """Create or replace documents; outcomes in input order."""

    def delete(self, datastore_id: str, external_id: str) -> tuple[str | None, bool]:
        """Delete by the caller's id: (upstream id, whether ZappWay had it)."""

    def delete_upstream(self, datastore_id: str, upstream_id: str) -> bool:
        """Delete by ZappWay's own id; whether ZappWay had it."""


@dataclass(frozen=True)
class ActionContext:
    """What `perform` may use: typed ZappWay operations and the connection's documents."""

    zappway: ZappWay
    connection_id: str
    documents: Documents


@dataclass(frozen=True)
class Detected:
    """One thing a trigger found upstream: its public id, when it happened, and its data."""

    object_id: str
    occurred_at: datetime
    data: Any


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
        _check_key("action", action.key, module)
        if action.kind not in ("create", "search"):
            raise ValueError(f"action {action.key}: KIND must be create or search")
        return action

    @property
    def many(self) -> bool:
        """Searches answer a bare array (what Zapier, Make and n8n expect of a search)."""
        return self.kind == "search"

    def load(self, payload: Any) -> dict[str, Any]:
        """Validate a request body (one schema instance per action, built once).

        Raises:
            marshmallow.ValidationError: naming the fields refused.
        """
        schema = _schemas(self.input_schema, False)
        loaded: dict[str, Any] = schema.load(payload, partial=_may_be_absent(self.input_schema))
        return loaded

    def dump(self, result: Any) -> Any:
        return _schemas(self.output_schema, self.many).dump(result)


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
    detect: Callable[[ZappWay, str, datetime | None], list[Detected]]
    render: Callable[[ZappWay, str, Sequence[Detected]], list[dict[str, Any]]]

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
            detect=module.detect,
            render=module.render,
        )
        _check_key("trigger", trigger.key, module)
        return trigger


@functools.cache
def _schemas(schema: type[Schema], many: bool) -> Schema:
    """Schema instances are reusable: building one per call cost more than loading with it."""
    return schema(many=many)


@functools.cache
def _may_be_absent(schema: type[Schema]) -> frozenset[str]:
    """The optional fields without a default: passed to `load` as `partial`, so marshmallow
    skips them when absent instead of running each field's whole deserialisation to find
    nothing to do (most of a load: a call sets two of query_agent's fifteen fields). Required
    fields, and fields with a default to fill in, are still processed."""
    fields = _schemas(schema, False).load_fields
    return frozenset(
        name
        for name, field in fields.items()
        if not field.required and field.load_default is missing
    )


def _check_key(kind: str, key: str, module: ModuleType) -> None:
    if not KEY_PATTERN.match(key) or module.__name__.rsplit(".", 1)[-1] != key:
        raise ValueError(f"{kind} key {key!r} must be snake_case and equal its module name")
