"""Real processes for the tests that need them: `python -m bridge.worker` and gunicorn.

One place for how they are started, stopped and waited on, so a test says only what differs
(a stop timeout, a poll interval) and every test stops its processes the same way: SIGTERM,
as Heroku does, and a clean exit expected.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx

from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"


def worker_env(tmp_path: Path, sim_server: str, **extra: str) -> dict[str, str]:
    """A worker's environment: the test's SQLite file and var dir, the simulator, a budget
    that never throttles, info logs (tests read them); `extra` adds or overrides."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "BRIDGE_ENV": "test",
        "BRIDGE_SECRET_KEY": TEST_SECRET,
        "BRIDGE_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.sqlite3'}",
        "ZAPPWAY_BASE_URL": f"{sim_server}/api/v1",
        "BRIDGE_FREE_RPM": "100000",
        "BRIDGE_LOG_LEVEL": "info",
        **extra,
    }


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m bridge.worker`, its output appended to `log`."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge.worker"], cwd=ROOT, env=env, stdout=handle, stderr=handle
        )


@contextmanager
def running_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A worker for the block. Leaving it, a worker still running is stopped and must exit
    cleanly; when the block failed it is stopped without checking, killed if it hangs."""
    worker = start_worker(env, log)
    try:
        yield worker
    except BaseException:
        terminate(worker)
        raise
    if worker.poll() is None:
        stop_cleanly(worker, log)


def stop_cleanly(process: subprocess.Popen[bytes], log: Path, timeout: float = 40) -> float:
    """SIGTERM; the seconds until the process exited, asserting exit status 0 (the log's tail
    is the failure message). Killed if it outlives `timeout`."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)
    assert process.returncode == 0, log.read_text()[-3000:]
    return time.monotonic() - started


def terminate(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM a process still running, SIGKILL if it outlives `timeout` (teardown: no check)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, log: Path | None = None
) -> None:
    """Poll `predicate` until it holds; fail naming `what` (and the log's tail) after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tail = f"\n{log.read_text()[-3000:]}" if log is not None else ""
            raise AssertionError(f"timed out waiting for {what}{tail}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(base: str, server: subprocess.Popen[bytes], log_path: Path,
                 timeout: float = 30) -> None:  # fmt: skip
    """Wait until the bridge at `base` answers /healthz (its log is the failure message)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.1)


class WebServer(NamedTuple):
    base: str
    log: Path
    process: subprocess.Popen[bytes]


@contextmanager
def gunicorn(tmp_path: Path, **extra: str) -> Iterator[WebServer]:
    """Run migrations, then gunicorn with the repository's config, the way the Procfile starts
    it (production settings, a fresh secret, the test's SQLite file); yield it once healthy."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "WEB_"))},
        "BRIDGE_ENV": "production",
        "BRIDGE_SECRET_KEY": secrets.token_urlsafe(36),
        "BRIDGE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bridge.sqlite3'}",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "XDG_RUNTIME_DIR": str(tmp_path),
        **extra,
    }
    env.pop("REDIS_URL", None)
    migrate = [sys.executable, "-m", "flask", "--app", "bridge", "migrate"]
    subprocess.run(migrate, cwd=ROOT, env=env, check=True, capture_output=True)
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [str(GUNICORN), "-c", "gunicorn.conf.py", "bridge:create_app()"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, server, log_path)
            yield WebServer(base, log_path, server)
        finally:
            server.terminate()
            server.wait(timeout=30)
