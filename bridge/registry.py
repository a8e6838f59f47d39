"""The explicit list of actions and triggers: routes, manifest.json and OpenAPI all read it."""

from __future__ import annotations

from actions import delete_document, query_agent, query_datastore, upsert_document
from bridge.operation import Action, Trigger
from triggers import new_conversation

ACTIONS: tuple[Action, ...] = tuple(
    Action.from_module(module)
    for module in (query_agent, upsert_document, delete_document, query_datastore)
)

TRIGGERS: tuple[Trigger, ...] = tuple(Trigger.from_module(module) for module in (new_conversation,))

_keys = [action.key for action in ACTIONS] + [trigger.key for trigger in TRIGGERS]
if len(set(_keys)) != len(_keys):
    raise ValueError(f"duplicate keys: {_keys}")


def action(key: str) -> Action:
    return next(a for a in ACTIONS if a.key == key)


def trigger_for(event_type: str) -> Trigger:
    """The trigger whose events have this type (every watch and hook names one)."""
    return next(t for t in TRIGGERS if t.event_type == event_type)
