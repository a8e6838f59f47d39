"""The Prometheus series every process records (one place), and the multiprocess directory.

Each process counts what happens in it; `GET /metrics` (`bridge.web.metrics`) shows the sum.
gunicorn runs several web processes and `python -m bridge.worker` runs apart, so the figures go
through prometheus_client's multiprocess mode: each process writes its own memory-mapped files
under one directory (`Settings.metrics_path`, `<var>/metrics`), and a scrape in any web process
adds them all up. What is a state rather than an event (pending documents, queue depth, the
workers' last beat) is read from the database and the queue at scrape time instead.

Labels are bounded by the code, never by traffic: a route's URL rule (not its path), an
operation or action key, a status, a provider key, a plan's requests/minute. No connection id,
URL or token is ever a label value.

The series are created on first use (`get()`), after the entry point chose the mode: a value
object created before `enable_multiprocess` would count in this process's memory only.
"""

from __future__ import annotations

import glob
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, values

SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0)
LAG_SECONDS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 7200.0, 36000.0)
WAIT_SECONDS = (0.005, 0.05, 0.25, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)
BATCH_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500)
# prometheus_client reads its directory from this variable when a value is created; the bridge
# sets it (never reads it) so that gunicorn's forked workers inherit it. Reading stays in config.
DIRECTORY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Series:
    """Every series, by what it counts (names follow Prometheus conventions)."""

    http_requests: Counter
    action_seconds: Histogram
    upstream_calls: Counter
    upstream_seconds: Histogram
    rate_wait_seconds: Histogram
    rate_limited: Counter
    inbound_events: Counter
    sync_batch_documents: Histogram
    hook_deliveries: Counter
    hook_delivery_lag_seconds: Histogram


REGISTRY = CollectorRegistry()  # this process's series (single-process mode: what is shown)
_series: Series | None = None
_directory: Path | None = None
_creating = threading.Lock()


def get() -> Series:
    """The process's series, created on first use (once, whichever thread comes first)."""
    global _series
    if _series is None:
        with _creating:
            if _series is None:
                _series = _create(REGISTRY)
    return _series


def _create(registry: CollectorRegistry) -> Series:
    return Series(
        http_requests=Counter(
            "bridge_http_requests", "Requests answered, by URL rule (never the path) and status",
            ["route", "method", "status"], registry=registry,
        ),
        action_seconds=Histogram(
            "bridge_action_seconds", "Time an action's perform took, by action and outcome "
            "(ok, or the error's code)", ["action", "outcome"], buckets=SECONDS,
            registry=registry,
        ),
        upstream_calls=Counter(
            "bridge_upstream_calls", "ZappWay requests sent (each retry counts), by operation "
            "and status (the HTTP status, or timeout / unavailable / reset)",
            ["operation", "status"], registry=registry,
        ),
        upstream_seconds=Histogram(
            "bridge_upstream_seconds", "Time of one ZappWay request, by operation",
            ["operation"], buckets=SECONDS, registry=registry,
        ),
        rate_wait_seconds=Histogram(
            "bridge_rate_wait_seconds", "Time a call waited for its key's budget, by plan "
            "(its requests/minute)", ["plan_rpm"], buckets=WAIT_SECONDS, registry=registry,
        ),
        rate_limited=Counter(
            "bridge_rate_limited", "429s: the key's own budget spent (source=budget) or "
            "ZappWay's 429 (source=upstream), by plan (its requests/minute)",
            ["plan_rpm", "source"], registry=registry,
        ),
        inbound_events=Counter(
            "bridge_inbound_events", "CMS webhooks received, by provider and result "
            "(accepted, duplicate, ignored, rejected, unmappable)", ["provider", "result"],
            registry=registry,
        ),
        sync_batch_documents=Histogram(
            "bridge_sync_batch_documents", "Documents in each sync batch taken for sending",
            buckets=BATCH_SIZES, registry=registry,
        ),
        hook_deliveries=Counter(
            "bridge_hook_deliveries", "Hook delivery attempts, by outcome (delivered, retry, "
            "failed, gone)", ["outcome"], registry=registry,
        ),
        hook_delivery_lag_seconds=Histogram(
            "bridge_hook_delivery_lag_seconds", "From an event's fan-out to its delivery's 2xx",
            buckets=LAG_SECONDS, registry=registry,
        ),
    )  # fmt: skip


def enable_multiprocess(directory: Path) -> None:
    """Record this process's series under `directory`, summed with the other processes'.

    Called by the entry points (gunicorn's master before it forks, `python -m bridge.worker`),
    never by `create_app`: tests build many apps in one process and keep its memory.

    Raises:
        RuntimeError: a series was already created in single-process mode.
    """
    global _directory
    if _series is not None and _directory is None:
        raise RuntimeError("metrics: enable multiprocess mode before the first series is used")
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[DIRECTORY_VARIABLE] = str(directory)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
    _directory = directory


def multiprocess_directory() -> Path | None:
    """The shared directory when this process runs in multiprocess mode, else None."""
    return _directory


def prepare_directory(directory: Path) -> None:
    """At a gunicorn master's start: forget the files of processes that no longer run.

    Only dead processes' files go: a bridge worker (or a second master) already running on this
    machine keeps its counts. A counter of a dead process disappears with it, which Prometheus
    reads as a counter reset.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for path in glob.glob(str(directory / "*.db")):
        pid = Path(path).stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            Path(path).unlink(missing_ok=True)


def process_exited(pid: int) -> None:
    """gunicorn's `child_exit`: drop the exited worker's live gauges (its counters stay)."""
    if _directory is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(_directory))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
