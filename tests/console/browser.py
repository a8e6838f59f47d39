"""What the browser tests run against and with: the bridge under gunicorn plus its worker, the
simulator on a real socket, a failing hook receiver, and Debian's Chromium through Playwright.

Chromium is launched from /usr/bin/chromium with the flags of shared/real-clients.md (no
`playwright install`, no lookups of outside hosts); axe-core comes from npm through the
committed package.json and lockfile beside this file. Every page the tests visit is saved as a
screenshot at desktop width and at 375 px under test-output/console/, and axe-core runs in it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.processes import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
OUTPUT = ROOT / "test-output" / "console"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-pings", "--disable-domain-reliability", "--dns-prefetch-disable",
    "--disable-features=AutofillServerCommunication,OptimizationHints,MediaRouter,Translate",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]  # fmt: skip
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
SERIOUS = ("serious", "critical")


def require_browser() -> None:
    """Skip (with the reason) when Debian's chromium is not installed and could not be."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get)")
    if not AXE.exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed to install axe-core from tests/console/package-lock.json"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)


@dataclass(frozen=True)
class Bridge:
    base: str
    admin_token: str
    env: dict[str, str]


@contextmanager
def bridge_stack(tmp: Path, zappway_base: str) -> Iterator[Bridge]:
    """Migrate, then run gunicorn (the Procfile's web line, production settings) and the
    worker (`python -m bridge.worker`) on one SQLite database and queue; yield the base URL."""
    port = free_port()
    admin = "adm_" + secrets.token_urlsafe(24)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "WEB_"))},
        "BRIDGE_ENV": "production",
        "BRIDGE_SECRET_KEY": secrets.token_urlsafe(36),
        "BRIDGE_ADMIN_TOKEN": admin,
        "BRIDGE_VAR_DIR": str(tmp),
        "DATABASE_URL": f"sqlite:///{tmp / 'bridge.sqlite3'}",
        "ZAPPWAY_BASE_URL": zappway_base + "/api/v1",
        "BRIDGE_ALLOW_PRIVATE_TARGETS": "true",  # the hook receiver is on 127.0.0.1 (loopback)
        "BRIDGE_POLL_INTERVAL": "1",
        "BRIDGE_SYNC_DEBOUNCE": "0",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "XDG_RUNTIME_DIR": str(tmp),
    }
    env.pop("REDIS_URL", None)
    python = sys.executable
    migrate = [python, "-m", "flask", "--app", "bridge", "migrate"]
    subprocess.run(migrate, cwd=ROOT, env=env, check=True, capture_output=True)
    gunicorn = str(Path(python).parent / "gunicorn")
    web_log, worker_log = (tmp / "web.log").open("wb"), (tmp / "worker.log").open("wb")
    web = subprocess.Popen([gunicorn, "-c", "gunicorn.conf.py", "bridge:create_app()"],
                           cwd=ROOT, env=env, stdout=web_log, stderr=subprocess.STDOUT)  # fmt: skip
    worker = subprocess.Popen([python, "-m", "bridge.worker"], cwd=ROOT, env=env,
                              stdout=worker_log, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, web, tmp / "web.log", timeout=60)
        yield Bridge(base, admin, env)
    finally:
        for process in (web, worker):
            process.terminate()
        for process in (web, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        web_log.close()
        worker_log.close()


class Pages:
    """Screenshots (desktop and 375 px) and an axe-core run for each page visited."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: list[str] = []
        OUTPUT.mkdir(parents=True, exist_ok=True)

    def check(self, name: str) -> None:
        """Save both screenshots of the current page and assert axe finds nothing serious."""
        page = self.page
        page.set_viewport_size(DESKTOP)
        page.screenshot(path=str(OUTPUT / f"{name}-desktop.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.screenshot(path=str(OUTPUT / f"{name}-375.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name}: the page scrolls sideways at 375 px ({overflow} px)"
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.add_script_tag(path=str(AXE))
        results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        serious = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
            for v in results["violations"]
            if v["impact"] in SERIOUS
        ]
        assert serious == [], f"{name}: {serious}"
        page.set_viewport_size(DESKTOP)
        self.seen.append(name)
