"""The per-key budget holds across processes, on every shared backend."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.config import Settings
from bridge.upstream.errors import UpstreamRateLimited
from bridge.upstream.ratelimit import KeyRateLimiter
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


def test_budget_admits_the_limit_then_says_when_to_retry(tmp_path):
    """With 3/min, three calls pass and the fourth raises with a Retry-After of up to a minute."""
    limiter = KeyRateLimiter(Settings.for_tests({"secret_key": TEST_SECRET, "var_dir": tmp_path}))
    try:
        for _ in range(3):
            limiter.acquire("fp-a", 3, max_wait=0)
        with pytest.raises(UpstreamRateLimited) as caught:
            limiter.acquire("fp-a", 3, max_wait=0)
        assert 1 <= caught.value.retry_after <= 61
        assert caught.value.upstream_status == 0
        limiter.acquire("fp-b", 3, max_wait=0)  # another key has its own budget
    finally:
        limiter.close()


def test_waiting_within_budget_admits_later(tmp_path):
    """A caller allowed to wait is admitted once the window frees (here: a 1-per-window budget)."""
    limiter = KeyRateLimiter(Settings.for_tests({"secret_key": TEST_SECRET, "var_dir": tmp_path}))
    try:
        limiter.acquire("fp-c", 1, max_wait=0)
        with pytest.raises(UpstreamRateLimited):
            limiter.acquire("fp-c", 1, max_wait=0.3)
    finally:
        limiter.close()


def run_two_processes(settings: dict, key: str, per_minute: int, each: int) -> list[dict]:
    start_at = time.time() + 1.5
    raw = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in settings.items()})
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.burst",
                raw,
                key,
                str(per_minute),
                str(each),
                str(start_at),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    return [json.loads(out.strip().splitlines()[-1]) for out in outputs]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres", "redis"])
def test_two_processes_never_exceed_the_key_limit(
    backend, request, tmp_path, sim_server, sim_admin, seeded
):
    """Two processes sending at once through one key: exactly the limit reaches the upstream."""
    per_minute, each = 12, 15
    settings = {
        "secret_key": TEST_SECRET,
        "var_dir": tmp_path / "var",
        "database_url": f"sqlite:///{tmp_path / 'b.sqlite3'}",
        "upstream_base_url": f"{sim_server}/api/v1",
        "upstream_rate_wait_s": 0,
    }
    if backend == "postgres":
        settings["database_url"] = request.getfixturevalue("pg_url")
    if backend == "redis":
        settings["redis_url"] = request.getfixturevalue("redis_url")
    sim_admin.clear_requests()
    results = run_two_processes(settings, seeded["key"], per_minute, each)
    upstream = [r for r in sim_admin.requests() if r["path"].endswith("/me")]
    assert sum(r["ok"] for r in results) == per_minute
    assert sum(r["limited"] for r in results) == 2 * each - per_minute
    assert len(upstream) == per_minute
    assert all(r["status"] == 200 for r in upstream)
