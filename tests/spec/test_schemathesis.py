"""Property-based contract test: schemathesis over /openapi.json finds no 5xx and no response
outside the documented schemas (in-process through WSGI, against the simulator).

`positive_data_acceptance` is left out: schema-valid input can still be refused on meaning
(an API key ZappWay rejects, an agent that does not exist), and that refusal is a 4xx by design.

Operations are driven with hypothesis directly (schemathesis's pytest plugin does not run on
pytest 9 yet); each operation is its own test so a failure names the route.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from bridge.registry import ACTIONS, TRIGGERS
from bridge.spec.openapi import build_openapi
from tests.conftest import bearer

OPERATIONS = [
    (method.upper(), path)
    for path, methods in build_openapi(ACTIONS, TRIGGERS)["paths"].items()
    for method in methods
]


@pytest.fixture
def token(client, seeded):
    created = client.post("/v1/connections", json={"api_key": seeded["key"]})
    return created.get_json()["token"]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation_conforms_to_its_schema(method, path, app, token):
    """Generated requests to this route never get a 5xx or an undocumented response."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case):
        case.call_and_validate(headers=bearer(token), excluded_checks=[positive_data_acceptance])

    check()
