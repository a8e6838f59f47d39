"""The simulator's control API is documented in sim/README.md, and `make demo` runs the
simulator on the port SIM_PORT names (issue 12 item 16)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sim import create_app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "sim" / "README.md"
PLACEHOLDER = re.compile(r"<[^<>]+>")


def _admin_routes() -> list[str]:
    """Every `METHOD /__admin/...` the simulator serves, path parameters as `<>`."""
    app = create_app()
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/__admin"):
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                found.add(f"{method} {PLACEHOLDER.sub('<>', rule.rule)}")
    return sorted(found)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("route", _admin_routes())
def test_every_admin_route_is_in_the_sim_readme(route):
    """Each control call (method and path) appears in sim/README.md."""
    documented = PLACEHOLDER.sub("<>", README.read_text())
    assert f"`{route}" in documented, f"{route} is not documented in sim/README.md"


def test_procfile_demo_runs_the_simulator_on_sim_port():
    """Procfile.demo's `sim` command, run with SIM_PORT set, listens on that port."""
    line = next(
        line for line in (ROOT / "Procfile.demo").read_text().splitlines()
        if line.startswith("sim:")
    )  # fmt: skip
    port = _free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "SIM_PORT": str(port), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    process = subprocess.Popen(  # noqa: S602 - the Procfile line is a shell command, as honcho runs it
        line.split(":", 1)[1], shell=True, cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        answered = None
        while time.monotonic() < deadline and answered is None:
            try:
                answered = httpx.get(f"http://127.0.0.1:{port}/__admin/settings", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
        assert answered is not None, "the simulator never listened on SIM_PORT"
        assert answered.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_points_the_bridge_and_the_demo_at_sim_port():
    """`make demo SIM_PORT=n` gives the bridge a ZappWay base URL on port n, and hands n on."""
    dry_run = subprocess.run(
        ["make", "-n", "demo", "SIM_PORT=9123"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "ZAPPWAY_BASE_URL=http://127.0.0.1:9123/api/v1" in dry_run
    assert "SIM_PORT=9123" in dry_run
    assert "8099" not in dry_run
