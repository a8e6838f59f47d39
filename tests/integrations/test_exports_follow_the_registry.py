"""The three apps are generated from the registry: a schema change reaches every one of them."""

from __future__ import annotations

import dataclasses

from marshmallow import fields

from bridge.registry import ACTIONS, TRIGGERS
from bridge.spec import exports
from bridge.spec.manifest import build_manifest


def _with_new_input(key: str, name: str) -> tuple:
    """ACTIONS with one more optional input on action `key`."""
    changed = []
    for action in ACTIONS:
        if action.key == key:
            extended = type(
                "ExtendedInput", (action.input_schema,),
                {name: fields.String(metadata={"description": "A brand new option."})},
            )  # fmt: skip
            action = dataclasses.replace(action, input_schema=extended)
        changed.append(action)
    return tuple(changed)


def test_a_new_input_field_appears_in_all_three_apps():
    """Adding an input to query_agent's schema changes the Zapier, Make and n8n exports, each
    of which then offers the new field, and nothing else changes outside that action."""
    before = build_manifest(ACTIONS, TRIGGERS)
    after = build_manifest(_with_new_input("query_agent", "tone_of_voice"), TRIGGERS)
    for target in exports.RENDERERS:
        old, new = exports.render(target, before), exports.render(target, after)
        changed = sorted(path for path in new if new[path] != old.get(path))
        assert changed, f"{target}: the new input changed nothing"
        assert any("tone_of_voice" in new[path] for path in changed), target
        assert all("tone_of_voice" not in old[path] for path in old), target


def test_a_removed_choice_disappears_from_all_three_apps():
    """Narrowing model_name's choices is reflected everywhere the choices are listed."""
    before = build_manifest(ACTIONS, TRIGGERS)
    after = build_manifest(ACTIONS, TRIGGERS)
    query = next(a for a in after["actions"] if a["key"] == "query_agent")
    model = next(f for f in query["input_fields"] if f["key"] == "model_name")
    model["choices"] = [c for c in model["choices"] if c != "dolphin_mixtral_8x7b"]
    for target in exports.RENDERERS:
        old = "".join(exports.render(target, before).values())
        new = "".join(exports.render(target, after).values())
        assert "dolphin_mixtral_8x7b" in old
        assert "dolphin_mixtral_8x7b" not in new, target
