"""A live bridge for platform apps: simulator and bridge on real 127.0.0.1 sockets, a worker.

The Zapier, Make, n8n and docs tests drive the bridge the way those platforms do, over HTTP.
Hooks and callbacks go to receivers on 127.0.0.1, so the bridge allows private targets here
(and only here: the targets are all loopback). The Huey consumer runs in threads beside the
server, as `python -m bridge.worker` would, so callbacks and hook deliveries really happen.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from huey import Huey

import sim
from bridge import create_app
from bridge.infra import storage
from bridge.runs.runner import ActionRunner
from bridge.runtime import Runtime
from bridge.web.context import service_of
from sim.testing import SimAdmin, serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
INTEGRATIONS = ROOT / "integrations"
TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class LiveBridge:
    url: str
    sim_url: str
    token: str
    signing_secret: str
    seeded: dict[str, Any]
    sim: SimAdmin

    @property
    def agent(self) -> str:
        return str(self.seeded["agents"][0]["id"])

    @property
    def datastore(self) -> str:
        return str(self.seeded["datastores"][0]["id"])

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def live_bridge(var_dir: Path, **overrides: Any) -> Iterator[LiveBridge]:
    """Serve a seeded simulator and a bridge (with a worker) on free loopback ports."""
    sim_app = sim.create_app({"profile": "documented", "seed": 1})
    with serve_in_thread(sim_app) as sim_url, httpx.Client(base_url=sim_url, timeout=10) as http:
        admin = SimAdmin(http)
        seeded = admin.seed()
        settings = {
            "secret_key": TEST_SECRET,
            "var_dir": var_dir,
            "database_url": f"sqlite:///{var_dir / 'bridge.sqlite3'}",
            "upstream_base_url": f"{sim_url}/api/v1",
            "upstream_max_retries": 0,
            "upstream_rate_wait_s": 2.0,
            "huey_immediate": False,
            "allow_private_targets": True,  # every hook and callback target here is 127.0.0.1
            "poll_interval_s": 1.0,
            "callback_retry_delays": (0.5, 0.5, 0.5),
            **overrides,
        }
        app = create_app(settings)
        storage.migrate(service_of(app, Runtime).engine)
        consumer = service_of(app, Huey).create_consumer(
            workers=4, worker_type="thread", periodic=False, max_delay=0.1,
            check_worker_health=False,
        )  # fmt: skip
        consumer.start()
        try:
            with serve_in_thread(app) as url:
                created = httpx.post(
                    f"{url}/v1/connections", json={"api_key": seeded["key"], "label": "Live"}
                )
                assert created.status_code == 201, created.text
                body = created.json()
                yield LiveBridge(url, sim_url, body["token"], body["signing_secret"], seeded, admin)
        finally:
            consumer.stop(graceful=True)
            service_of(app, ActionRunner).shutdown()
            service_of(app, Runtime).close()  # pools, including the connections to receivers


def need_node() -> tuple[str, str]:
    """Paths of node and npm, or a skip saying they are missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are not installed: the platform app tests need Node 20+")
    return node, npm


def npm_ci(project: Path) -> None:
    """Install `project` from its lockfile, once per lockfile (a stamp in node_modules)."""
    _, npm = need_node()
    lock = (project / "package-lock.json").read_bytes()
    stamp = project / "node_modules" / ".installed-from-lock"
    digest = hashlib.sha256(lock).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
        cwd=project, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    stamp.write_text(digest)


def random_suffix() -> str:
    return secrets.token_hex(4)
