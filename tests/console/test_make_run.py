"""`make run` prints the console's URL and an admin token that signs in to it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.console.browser import ROOT, free_port

pytestmark = pytest.mark.slow


def test_make_run_prints_the_console_url_and_serves_it(tmp_path: Path):
    """The banner names the console's URL and a local admin token; both work at once."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "WEB_"))},
        "BRIDGE_VAR_DIR": str(tmp_path),
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
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
        url, admin = banner.group(1), banner.group(2)
        assert url == f"http://127.0.0.1:{port}/console"
        while True:
            try:
                page = httpx.get(url, follow_redirects=True, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "".join(lines)
                time.sleep(0.3)
        assert page.status_code == 200 and "Sign in to the console" in page.text
        listed = httpx.get(f"http://127.0.0.1:{port}/v1/admin/connections",
                           headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
        assert listed.status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
