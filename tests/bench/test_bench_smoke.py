"""Seconds-long smoke runs of every benchmark script: they start, measure, clean up, and write a
JSON result with the expected keys and sane values. No timing is asserted (timings live in
`make bench`, never in tests); only that each part ran and answered.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = os.environ.get("BRIDGE_TEST_REDIS_DB", "9")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _port_open(port: int) -> bool:
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_bench(module: str, out: Path, *args: str, backend: str = "sqlite") -> dict[str, Any]:
    argv = [sys.executable, "-m", module, "--backend", backend, "--out", str(out),
            "--redis-db", REDIS_DB, "--max-seconds", "90", *args]  # fmt: skip
    before = tree_status()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RESULT " in done.stdout
    name = {"bench.query_agent_load": "concurrency"}.get(module, module.removeprefix("bench."))
    result: dict[str, Any] = json.loads((out / f"{name}-{backend}.json").read_text())
    assert result["benchmark"] == name
    assert result["backend"] == backend
    assert {"machine", "config", "rounds", "summary", "comparisons", "command"} <= result.keys()
    assert result["machine"]["cores"] >= 1
    for comparison in result["comparisons"]:
        assert {"name", "bridge", "reference", "ratio", "goal", "met"} <= comparison.keys()
    assert tree_status() == before, "a benchmark left files in the repository"
    return result


def tree_status() -> str:
    """Untracked and changed files of the checkout (ignored ones such as caches excluded)."""
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True, check=False).stdout  # fmt: skip


def targets(result: dict[str, Any]) -> list[str]:
    return [r["target"] for r in result["rounds"]]


def test_overhead_smoke(tmp_path: Path) -> None:
    result = run_bench("bench.overhead", tmp_path, "--seconds", "0.4", "--warmup", "0.2",
                       "--rounds", "1", "--connections", "1,4")  # fmt: skip
    assert targets(result) == ["bridge", "passthrough", "stub"] * 2  # A/B/C per connection count
    for entry in result["rounds"]:
        assert entry["metrics"]["errors"] == 0
        assert entry["metrics"]["calls_per_s"] > 0
        assert entry["metrics"]["p50_ms"] > 0
    summary = result["summary"]
    assert summary["throughput_ratio"] > 0
    assert summary["bridge_added_p50_ms"] is not None
    assert (tmp_path / "overhead-sqlite.png").stat().st_size > 1000


def test_concurrency_smoke(tmp_path: Path) -> None:
    result = run_bench("bench.query_agent_load", tmp_path, "--requests", "20", "--latency",
                       "0.3", "--rounds", "1", "--pause", "0", "--no-chart")  # fmt: skip
    assert targets(result) == ["bridge", "baseline"]
    summary = result["summary"]
    assert summary["bridge_errors"] == 0
    assert summary["bridge_requests"] == 20
    assert summary["bridge_p99_s"] >= 0.3  # the upstream's own latency is included
    assert summary["baseline_p99_s"] >= 0.3
    assert 50 < summary["peak_rss_mb"] < 2000
    bridge_round = result["rounds"][0]["metrics"]
    assert bridge_round["upstream_calls"] == 20


def test_ingest_smoke(tmp_path: Path) -> None:
    result = run_bench("bench.ingest", tmp_path, "--requests", "40", "--warmup", "5",
                       "--rounds", "1", "--drain-documents", "30", "--batch-size", "10",
                       "--plan", "pro", "--quiet-wait", "0", "--no-chart",
                       "--env", "BRIDGE_SYNC_DEBOUNCE=0")  # fmt: skip
    assert targets(result) == ["ingest", "floor"]
    summary = result["summary"]
    assert summary["errors"] == 0
    assert summary["stored_matches_acks"] is True
    assert summary["bridge_cpu_ms_per_ack"] > 0
    drain = summary["drain"]
    assert drain["complete"] is True
    assert drain["upsert_calls"] == drain["upsert_calls_expected"] == 3
    assert drain["upsert_statuses"] == {"201": 3}
    assert summary["per_event"]["upsert_calls"] == 30


@pytest.mark.postgres
@pytest.mark.redis
def test_ingest_smoke_on_postgres_and_redis(tmp_path: Path) -> None:
    if not (_port_open(5432) and _port_open(6379)):
        pytest.skip("PostgreSQL or Redis is not running on 127.0.0.1")
    result = run_bench("bench.ingest", tmp_path, "--requests", "30", "--warmup", "5",
                       "--rounds", "1", "--no-drain", "--quiet-wait", "0", "--no-chart",
                       backend="postgres")  # fmt: skip
    assert result["config"]["backend"] == "PostgreSQL + Redis"
    assert result["summary"]["errors"] == 0
    assert result["summary"]["stored_matches_acks"] is True


def test_fanout_smoke(tmp_path: Path) -> None:
    result = run_bench("bench.fanout", tmp_path, "--subscribers", "10", "--agents", "2",
                       "--duration", "2", "--poll-interval", "2", "--settle", "15")  # fmt: skip
    summary = result["summary"]
    assert summary["deliveries_received"] == summary["deliveries_expected"] > 0
    assert summary["latency_p95_s"] is not None
    assert summary["list_calls_per_min"] > 0
    assert (tmp_path / "fanout-sqlite.png").exists()


def test_make_bench_table_is_rebuilt_from_the_results(tmp_path: Path) -> None:
    """`python -m bench` turns the JSON results into the table between RESULTS.md's markers."""
    import bench.__main__ as make_bench
    from bench import harness as h

    result = h.Result("ingest", "sqlite", "a test")
    result.add_round("ingest", {}, {"acks_per_s": 100.0, "other_load_share": 0.2})
    result.add_round("floor", {}, {"acks_per_s": 400.0, "other_load_share": 0.1})
    result.comparisons.append(
        h.Comparison("acks/s", 100.0, 400.0, "/s", "floor",
                     result.pair_ratio("ingest", "floor", "acks_per_s"), ">= 0.3 x", False)
    )  # fmt: skip
    result.write(tmp_path, chart=False)
    lines = make_bench.latest_block(tmp_path, ["sqlite", "postgres"], ["ingest"], "make bench")
    text = "\n".join(lines)
    assert "### SQLite" in text and "PostgreSQL" not in text
    assert "| acks/s | 100 /s | floor: 400 /s | 0.25 x | >= 0.3 x | **not met** |" in text
    assert "other processes used 10%-20% of the machine" in text

    results_md = tmp_path / "RESULTS.md"
    results_md.write_text(f"intro\n{make_bench.BEGIN}\nold\n{make_bench.END}\nrecord\n")
    make_bench.update_block(results_md, lines)
    updated = results_md.read_text()
    assert updated.startswith("intro\n") and updated.endswith(f"{make_bench.END}\nrecord\n")
    assert "old" not in updated and "| acks/s |" in updated
    unmarked = tmp_path / "README.md"
    unmarked.write_text("no table here\n")
    make_bench.update_block(unmarked, lines)
    assert unmarked.read_text() == "no table here\n"


def test_readme_carries_the_latest_bench_table() -> None:
    """Issue 14: the README shows the latest `make bench` table, the same one as RESULTS.md."""
    import bench.__main__ as make_bench

    def block(path: Path) -> str:
        text = path.read_text()
        return text.partition(make_bench.BEGIN)[2].partition(make_bench.END)[0]

    readme = block(make_bench.README_MD)
    assert "| work | bridge | reference" in readme
    assert readme == block(make_bench.RESULTS_MD)


def test_ack_path_smoke() -> None:
    """`bench.ack_path`: the in-process ack beside /healthz, and its CPU profile, in seconds."""
    argv = [sys.executable, "-m", "bench.ack_path", "--requests", "20", "--rounds", "1",
            "--profile", "5"]  # fmt: skip
    before = tree_status()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "database: sqlite; provider: wordpress; 1 rounds of 20" in done.stdout
    assert "ms CPU per ack" in done.stdout and "ms CPU per request" in done.stdout
    assert "function calls" in done.stdout  # the profile was printed
    assert tree_status() == before, "the benchmark left files in the repository"


def test_upstream_wire_smoke() -> None:
    """`bench.upstream_wire`: one upstream request's CPU by way of sending it, in seconds; each
    way got the stub's answer (a failed send would raise, not print)."""
    argv = [sys.executable, "-m", "bench.upstream_wire", "--requests", "20", "--rounds", "1"]
    before = tree_status()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for way in ("bridge", "httpx-transport", "httpx-client", "http.client"):
        assert f"| {way} | " in done.stdout
    assert tree_status() == before, "the benchmark left files in the repository"


def test_stack_floor_smoke(tmp_path: Path) -> None:
    """`bench.stack_floor` serves every layer, measures each against the stub, cleans up."""
    argv = [sys.executable, "-m", "bench.stack_floor", "--out", str(tmp_path), "--seconds",
            "0.3", "--rounds", "1", "--max-seconds", "90"]  # fmt: skip
    before = tree_status()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "stack_floor-none.json").read_text())
    layers = ["bare", "flask", "upstream_http_client", "upstream_httpx", "flask_upstream",
              "passthrough", "stub"]  # fmt: skip
    assert targets(result) == layers
    for entry in result["rounds"]:
        assert entry["metrics"]["errors"] == 0 and entry["metrics"]["calls"] > 0
    assert all(result["summary"][layer]["p50_ms"] > 0 for layer in layers[:-1])
    assert tree_status() == before, "a benchmark left files in the repository"
