"""Property-based contract test: schemathesis over /openapi.json finds no 5xx and no response
outside the documented schemas (in-process through WSGI, against the simulator).

Every built-in check runs (schemathesis enables them all unless told otherwise), among them
`status_code_conformance` (only the statuses each operation lists), `response_schema_conformance`
and `response_headers_conformance`: the headers the document marks `required` (Retry-After on
429 and 409, X-Total-Count on dropdown pages) must be present and valid.

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

from bridge import create_app
from bridge.spec.openapi import operations
from tests.conftest import TEST_SECRET, bearer

# Built from an app that is never served: the routes' declarations need no database.
_APP = create_app({"secret_key": TEST_SECRET, "database_url": "sqlite://", "huey_immediate": True})
OPERATIONS = [(op.method.upper(), op.path) for op in operations(_APP)]


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
