"""An action's input as `Action.load` reads it: absent optionals skipped, not mis-read.

`load` tells marshmallow which optional fields it may skip when absent (`partial`); required
fields, defaults and every field that is present must still be checked as before.
"""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from bridge.registry import ACTIONS

ACTION = {action.key: action for action in ACTIONS}
AGENT = "c0000000stubagent00000000"


def test_absent_optionals_stay_absent():
    loaded = ACTION["query_agent"].load({"agent_id": AGENT, "query": "Hi"})
    assert loaded == {"agent_id": AGENT, "query": "Hi"}


def test_a_missing_required_field_is_still_refused():
    with pytest.raises(ValidationError) as caught:
        ACTION["query_agent"].load({"agent_id": AGENT})
    assert set(caught.value.messages) == {"query"}


def test_a_default_is_still_filled_in():
    loaded = ACTION["query_datastore"].load({"datastore_id": AGENT, "query": "Hi"})
    assert loaded["top_k"] == 5


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"temperature": 3}, "temperature"), ({"contact": {"email": "not-an-email"}}, "contact")],
)
def test_present_optionals_are_still_validated(extra, field):
    with pytest.raises(ValidationError) as caught:
        ACTION["query_agent"].load({"agent_id": AGENT, "query": "Hi", **extra})
    assert set(caught.value.messages) == {field}
