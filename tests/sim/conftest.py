"""Fixtures for the simulator's own tests: an app per test, an in-process client, demo data.

``sim_app`` and ``client`` shadow the bridge fixtures of the same names in tests/conftest.py:
here ``client`` talks to the simulator, not to the bridge.
"""

import httpx
import pytest

from sim import create_app
from sim.testing import SimAdmin, serve_in_thread


@pytest.fixture
def sim_app():
    return create_app({"seed": 7})


@pytest.fixture
def client(sim_app):
    with httpx.Client(transport=httpx.WSGITransport(app=sim_app), base_url="http://sim") as c:
        yield c


@pytest.fixture
def admin(client):
    return SimAdmin(client)


@pytest.fixture
def demo(admin):
    return admin.seed()


@pytest.fixture
def headers(demo):
    return {"Authorization": f"Bearer {demo['key']}"}


@pytest.fixture
def legacy(admin):
    admin.set_profile("legacy")
    return admin


@pytest.fixture
def agent_id(demo):
    return demo["agents"][0]["id"]


@pytest.fixture
def datastore_id(demo):
    return demo["datastores"][0]["id"]


@pytest.fixture
def served(sim_app):
    with serve_in_thread(sim_app) as base_url:
        yield base_url
