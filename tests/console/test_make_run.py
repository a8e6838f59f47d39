"""`make run` prints the console's URL and an admin token that signs in to it, and serves this
machine only (HOST=127.0.0.1) while a bare gunicorn (Heroku) binds every interface."""

from __future__ import annotations

import contextlib
import os
import re
import runpy
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.console.browser import ROOT, free_port

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Running:
    port: int
    console_url: str
    admin_token: str
    output: list[str]


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """`make run` started once for the module, as a developer would (HOST left to its default),
    answering on its console URL."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "WEB_"))},
        "BRIDGE_VAR_DIR": str(tmp_path_factory.mktemp("make-run")),
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    }
    for name in ("REDIS_URL", "DATABASE_URL", "HOST"):
        env.pop(name, None)
    process = subprocess.Popen(
        ["make", "run"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        banner = None
        while banner is None:
            line = process.stdout.readline()
            assert line and time.monotonic() < deadline, "".join(lines)
            lines.append(line)
            banner = re.search(r"Console: (http://127\.0\.0\.1:\d+/console) .*admin token: (\S+)\)",
                               line)  # fmt: skip
        url = banner.group(1)
        while True:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "".join(lines)
                time.sleep(0.3)
        yield Running(port, url, banner.group(2), lines)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_make_run_prints_the_console_url_and_serves_it(make_run: Running):
    """The banner names the console's URL and a local admin token; both work at once."""
    assert make_run.console_url == f"http://127.0.0.1:{make_run.port}/console"
    page = httpx.get(make_run.console_url, follow_redirects=True, timeout=5)
    assert page.status_code == 200 and "Sign in to the console" in page.text
    listed = httpx.get(f"http://127.0.0.1:{make_run.port}/v1/admin/connections",
                       headers={"Authorization": f"Bearer {make_run.admin_token}"})  # fmt: skip
    assert listed.status_code == 200


def test_make_run_listens_on_127_0_0_1_only(make_run: Running):
    """The development server takes connections on 127.0.0.1 and on no other address: another
    address of this machine (127.0.0.2, which a server bound to 0.0.0.0 answers) is refused."""
    assert any("listening on 127.0.0.1" in line for line in make_run.output)
    with socket.create_connection(("127.0.0.1", make_run.port), timeout=2):
        pass
    with (
        pytest.raises(ConnectionRefusedError),
        contextlib.closing(socket.socket()) as other,
    ):
        other.settimeout(2)
        other.connect(("127.0.0.2", make_run.port))


@pytest.mark.parametrize(
    ("environ", "bind"),
    [
        ({"PORT": "5000"}, "0.0.0.0:5000"),  # Heroku: the router reaches the dyno on any address
        ({"PORT": "5000", "HOST": ""}, "0.0.0.0:5000"),
        ({"PORT": "8000", "HOST": "127.0.0.1"}, "127.0.0.1:8000"),  # what `make run` passes
        ({"PORT": "8000", "HOST": "::1"}, "[::1]:8000"),
    ],
)
def test_gunicorn_binds_host_and_port(environ: dict[str, str], bind: str):
    """gunicorn.conf.py binds HOST (every interface when unset) and PORT."""
    conf = runpy.run_path(str(Path(ROOT) / "gunicorn.conf.py"))
    assert conf["listen_address"](environ) == bind
