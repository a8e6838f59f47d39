"""The explicit list of actions and triggers: routes, manifest.json and OpenAPI all read it."""

from __future__ import annotations

from actions import delete_document, query_agent, query_datastore, upsert_document
from bridge.operation import Action

ACTIONS: tuple[Action, ...] = tuple(
    Action.from_module(module)
    for module in (query_agent, upsert_document, delete_document, query_datastore)
)

_keys = [action.key for action in ACTIONS]
if len(set(_keys)) != len(_keys):
    raise ValueError(f"duplicate action keys: {_keys}")


def action(key: str) -> Action:
    return next(a for a in ACTIONS if a.key == key)
