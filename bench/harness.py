"""What every benchmark shares: processes, backends, samplers, the load client, results.

- **Processes**: `Processes` starts each child in its own session (process group) with its output
  in a log file, waits for readiness, and stops every group it started (SIGTERM, then SIGKILL)
  when its `with` block ends, also on Ctrl-C, SIGTERM (`guard_run`) or an exception.
- **Backends**: `Backend` is `sqlite` (database and queue/limiter on SQLite files in the work
  directory) or `postgres` (a throw-away PostgreSQL database created next to `test` and dropped
  afterwards, the queue and limiter on Redis database `--redis-db`, flushed before and after).
- **The parties**: the simulator (`start_simulator`), the bridge (`Bridge`: migrate, gunicorn with
  `gunicorn.conf.py`, optionally `python -m bridge.worker`), all on 127.0.0.1 only.
- **Samplers**: `CpuMeter` (CPU seconds of named process trees, the load generator and everything
  else on the machine), `MemorySampler` (summed RSS/PSS of a process tree), `listen_overflows`.
- **Load**: `fire` is a minimal asyncio HTTP/1.1 client (pre-built request bytes; a few hundred
  microseconds of CPU per call, where httpx costs ~1 ms on the same shared cores); `run_for` is
  its closed-loop, keep-alive form for a fixed duration.
- **Results**: `Result` (rounds, comparisons against goals, machine, command) printed as text and
  written as JSON plus a PNG chart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import resource
import secrets
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from sim.testing import SimAdmin

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
HOST = "127.0.0.1"
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"
POSTGRES_ADMIN_DB = "test"  # only used to CREATE/DROP the throw-away database, never written
REDIS_SERVER = "redis://127.0.0.1:6379"
DEFAULT_REDIS_DB = 4
RESULTS_DIR = ROOT / "bench" / "results"
SCRATCH_DIR = RESULTS_DIR / "scratch"
SAMPLE_EVERY_S = 0.1
# The simulator as `python -m sim` runs it, with two load-only tunings: werkzeug's 128-connection
# listen queue overflows when 1,000 connections arrive at once (the kernel then drops or resets
# some), and the latency fault re-checks for client disconnects every 50 ms, so 1,000 waiting
# threads wake 20,000 times a second and stretch a 3 s answer to 3.4-3.8 s. With a 0.5 s step a
# 3 s latency is still 3 s (the last step is shortened to the deadline).
SIM_LAUNCHER = """
import sys
import werkzeug.serving
werkzeug.serving.BaseWSGIServer.request_queue_size = 4096
from sim import fault_effects
fault_effects.STEP_S = 0.5
from sim.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


# --- the run itself -----------------------------------------------------------------------


def common_arguments(parser: argparse.ArgumentParser, *, rounds: int | None = 3) -> None:
    """Options every benchmark takes."""
    add = parser.add_argument
    add(
        "--backend",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="sqlite: database, queue and limiter on SQLite; postgres: a throw-away PostgreSQL"
        " database plus Redis for queue and limiter (sqlite)",
    )
    add("--redis-db", type=int, default=DEFAULT_REDIS_DB, help="Redis database (4), flushed")
    if rounds is not None:
        add("--rounds", type=int, default=rounds, help=f"A/B pairs, alternated ({rounds})")
    add("--out", type=Path, default=SCRATCH_DIR, help="where the JSON and PNG go")
    add("--no-chart", action="store_true", help="skip the PNG (no matplotlib needed)")
    add("--keep", action="store_true", help="keep the temporary directory (logs)")
    add("--max-seconds", type=float, default=900, help="hard cap on the whole run (900)")
    add("--env", action="append", default=[], metavar="NAME=VALUE", help="extra bridge env")


def guard_run(max_seconds: float | None) -> None:
    """Ctrl-C, SIGTERM and the `max_seconds` alarm end the run through the normal clean-up
    path (every `with` block stops its processes and drops its database); once one arrives,
    further Ctrl-C or SIGTERM are ignored so that they cannot cut the clean-up short."""

    def stop(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        if signum == signal.SIGALRM:
            sys.exit(f"gave up after {max_seconds:.0f} s (--max-seconds)")
        sys.exit(143)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(signum, stop)
    if max_seconds:
        signal.alarm(max(1, int(max_seconds)))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # a 1,000-connection burst needs more than the usual 1,024 descriptors
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextmanager
def workspace(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary directory, removed afterwards unless `keep`."""
    work = Path(tempfile.mkdtemp(prefix=f"zwb-{prefix}-"))
    try:
        yield work
    finally:
        if keep:
            print(f"  logs     : kept in {work}")
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Proc:
    """One started process (the leader of its own process group) and its log."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.popen, self.log = name, popen, log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tree(self) -> list[int]:
        return descendants(self.pid)

    def children(self) -> list[int]:
        return [pid for pid in descendants(self.pid) if pid != self.pid]

    def stop(self) -> None:
        """SIGTERM the whole group, SIGKILL it if it lingers; a no-op once stopped."""
        if self.popen.poll() is not None:
            self._kill_group(signal.SIGKILL)  # orphans of an exited leader, if any
            return
        self._kill_group(signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self._kill_group(signal.SIGKILL)
            self.popen.wait(5)

    def _kill_group(self, sig: signal.Signals) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def check(self) -> None:
        if not self.alive():
            raise SystemExit(
                f"{self.name} exited ({self.popen.returncode}); {self.log}:\n{tail(self.log)}"
            )


class Processes:
    """Every process a benchmark starts; all of them are stopped when the block ends."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._stack = ExitStack()
        self._procs: list[Proc] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(self._procs):
            proc.stop()
        self._stack.close()

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Proc:
        log = self.work / f"{name}.log"
        handle = self._stack.enter_context(log.open("ab"))
        popen = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=dict(env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        proc = Proc(name, popen, log)
        self._procs.append(proc)
        return proc


def wait_http(url: str, proc: Proc, timeout: float = 60) -> None:
    """Until `url` answers below 500, or `proc` exits, or `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.check()
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up within {timeout:.0f} s; {proc.log}:\n{tail(proc.log)}")


# --- backends -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """Where the bridge keeps its data: `sqlite`, or `postgres` (PostgreSQL + Redis)."""

    name: str
    database_url: str
    redis_url: str | None

    @property
    def label(self) -> str:
        return "PostgreSQL + Redis" if self.redis_url else "SQLite"


@contextmanager
def postgres_database(prefix: str = "zwb_bench") -> Iterator[str]:
    """Create a throw-away database next to `test`, yield its URL, drop it afterwards."""
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = f"{POSTGRES_SERVER}/{POSTGRES_ADMIN_DB}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def redis_database(db: int) -> Iterator[str]:
    """Redis database `db`, flushed before and after."""
    import redis

    url = f"{REDIS_SERVER}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@contextmanager
def backend(name: str, work: Path, redis_db: int) -> Iterator[Backend]:
    """A fresh backend of kind `name` for one bridge instance."""
    if name == "sqlite":
        path = work / f"bridge-{secrets.token_hex(3)}.sqlite3"
        yield Backend("sqlite", f"sqlite:///{path}", None)
        return
    with postgres_database() as url, redis_database(redis_db) as redis_url:
        yield Backend("postgres", url, redis_url)


# --- the parties --------------------------------------------------------------------------


def base_env(work: Path) -> dict[str, str]:
    """The caller's environment without any bridge setting, plus the venv on PATH."""
    prefixes = ("BRIDGE_", "WEB_", "ZAPPWAY_", "DATABASE_URL", "REDIS_URL", "PORT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PATH"] = f"{BIN}:{os.environ.get('PATH', '')}"
    env["XDG_RUNTIME_DIR"] = str(work)  # gunicorn's control socket, not ~/.gunicorn
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def parse_env_items(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--env wants NAME=VALUE, not {item!r}")
        out[name] = value
    return out


def gunicorn_argv(port: int, app: str) -> list[str]:
    """gunicorn with `gunicorn.conf.py`'s settings, bound to loopback only."""
    return [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "-b", f"{HOST}:{port}", app]


def gunicorn_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Evaluate gunicorn.conf.py under `env`: the settings gunicorn will really use."""
    import runpy

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    names = ("worker_class", "workers", "threads", "worker_connections")
    return {name: conf.get(name) for name in names}


def start_stub(procs: Processes, env: Mapping[str, str], key: str) -> tuple[Proc, int]:
    """`bench/stub.py` (the instant upstream) on a free port, answering `key`; once healthy."""
    port = free_port()
    stub = procs.start("stub", [PYTHON, "-m", "bench.stub", "--port", str(port), "--key", key],
                       env)  # fmt: skip
    wait_http(f"http://{HOST}:{port}/healthz", stub)
    return stub, port


class Simulator:
    """`python -m sim` on a free loopback port, with the load tunings unless `plain`."""

    def __init__(self, procs: Processes, env: Mapping[str, str], plain: bool = False) -> None:
        self.port = free_port()
        launcher = ["-m", "sim"] if plain else ["-c", SIM_LAUNCHER]
        argv = [PYTHON, *launcher, "--host", HOST, "--port", str(self.port)]
        self.proc = procs.start("simulator", argv, env)
        self.url = f"http://{HOST}:{self.port}"
        wait_http(f"{self.url}/__admin/settings", self.proc)
        self.admin = SimAdmin(self.url)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"


class Bridge:
    """The bridge's web processes (gunicorn) and optionally a worker, on one backend."""

    def __init__(
        self,
        procs: Processes,
        work: Path,
        store: Backend,
        upstream_url: str,
        settings: Mapping[str, object] | None = None,
        name: str = "bridge",
    ) -> None:
        self.procs, self.store, self.name = procs, store, name
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = base_env(work)
        env.update(
            {
                "BRIDGE_ENV": "production",
                "BRIDGE_SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
                "BRIDGE_VAR_DIR": str(work / f"{name}-var"),
                "BRIDGE_LOG_LEVEL": "warning",
                "DATABASE_URL": store.database_url,
                "ZAPPWAY_BASE_URL": upstream_url,
                "PORT": str(self.port),
            }
        )
        if store.redis_url:
            env["REDIS_URL"] = store.redis_url
        for key, value in (settings or {}).items():
            if value is not None:
                env[key] = str(value)
        self.env = env
        self.config = gunicorn_settings(env)
        subprocess.run(
            [PYTHON, "-m", "flask", "--app", "bridge", "migrate"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        self.web = procs.start(f"{name}-web", gunicorn_argv(self.port, "bridge:create_app()"), env)
        wait_http(f"{self.url}/healthz", self.web)
        self.worker: Proc | None = None

    def start_worker(self) -> Proc:
        self.worker = self.procs.start(
            f"{self.name}-worker", [PYTHON, "-m", "bridge.worker"], self.env
        )
        return self.worker

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.web.stop()

    def web_workers(self) -> list[int]:
        return self.web.children()

    def connect(self, api_key: str, plan: str) -> str:
        """Create a connection (POST /v1/connections); return its token."""
        created = httpx.post(
            f"{self.url}/v1/connections", timeout=30, json={"api_key": api_key, "plan": plan}
        )
        if created.status_code != 201:
            raise SystemExit(f"creating the connection: {created.status_code} {created.text}")
        return str(created.json()["token"])


# --- samplers -----------------------------------------------------------------------------


def descendants(root: int) -> list[int]:
    """Return `root` and every live process below it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def pids_named(*names: str) -> list[int]:
    """Every process whose command name is one of `names` (postgres backends, redis-server)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm in names:
                found.append(int(entry))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes (children reaped into them included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / ticks


def machine_busy_s() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit_s: float, threshold: float = 0.15) -> float:
    """Wait (up to `limit_s`) until the machine is < `threshold` busy over 1 s; return the share."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + limit_s
    while True:
        before = machine_busy_s()
        time.sleep(1)
        share = (machine_busy_s() - before) / cores
        if share < threshold or time.monotonic() > deadline:
            return round(share, 2)


def listen_overflows() -> int:
    """TcpExt ListenOverflows: connections dropped because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0))
    return 0


class CpuMeter:
    """CPU seconds of each named party over an interval, plus `other`: the rest of the machine.

    Parties are callables returning pids, re-read at both ends (gunicorn workers, postgres
    backends). `load_generator` is this process. `other` above ~10 % of the machine means
    another job (someone's tests) competed for the cores: the figures are skewed.
    """

    def __init__(self, parties: Mapping[str, Callable[[], Sequence[int]]]) -> None:
        self.parties = parties
        self._before: dict[str, float] = {}
        self._started = 0.0

    def _read(self) -> dict[str, float]:
        values = {name: cpu_seconds(pids()) for name, pids in self.parties.items()}
        values["load_generator"] = time.process_time()
        values["machine"] = machine_busy_s()
        return values

    def __enter__(self) -> CpuMeter:
        self._before = self._read()
        self._started = time.perf_counter()
        self.cpu: dict[str, float] = {}
        self.other_share = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        after = self._read()
        wall = max(time.perf_counter() - self._started, 1e-9)
        cpu = {name: after[name] - self._before[name] for name in after}
        machine = cpu.pop("machine")
        cpu["other"] = max(0.0, machine - sum(cpu.values()))
        self.cpu = {name: round(value, 2) for name, value in cpu.items()}
        self.other_share = round(cpu["other"] / ((os.cpu_count() or 1) * wall), 3)


def _status_fields(pid: int) -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "Threads"):
                values[name] = int(rest.split()[0])
    except (OSError, ValueError):
        return {}
    return values


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Memory:
    rss_mb: float
    pss_mb: float
    threads: int
    processes: int


def memory_of(root: int) -> Memory:
    rss = pss = threads = 0
    pids = descendants(root)
    for pid in pids:
        fields = _status_fields(pid)
        rss += fields.get("VmRSS", 0)
        threads += fields.get("Threads", 0)
        pss += _pss_kb(pid)
    return Memory(round(rss / 1024, 1), round(pss / 1024, 1), threads, len(pids))


class MemorySampler:
    """Peak summed RSS / PSS / threads of a process tree, sampled every 100 ms in a thread."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = Memory(0.0, 0.0, 0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = memory_of(self.root)
            self.peak = Memory(
                max(self.peak.rss_mb, now.rss_mb),
                max(self.peak.pss_mb, now.pss_mb),
                max(self.peak.threads, now.threads),
                max(self.peak.processes, now.processes),
            )
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


# --- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (values need not be sorted)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> dict[str, float | None]:
    """p50 / p90 / p95 / p99 / max, multiplied by `scale` (1000: seconds to ms)."""
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
        value = percentile(values, q)
        out[name] = None if value is None else round(value * scale, digits)
    return out


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 4) if present else None


def max_in_window(times: Sequence[float], window: float = 60.0) -> int:
    """The most events in any `window`-second interval."""
    ordered, best, low = sorted(times), 0, 0
    for high, at in enumerate(ordered):
        while at - ordered[low] >= window:
            low += 1
        best = max(best, high - low + 1)
    return best


# --- the load client ----------------------------------------------------------------------


def http_request(
    method: str,
    path: str,
    port: int,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    keepalive: bool = False,
) -> bytes:
    """The bytes of one HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    if body or method in ("POST", "PUT", "PATCH"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines.append("Connection: " + ("keep-alive" if keepalive else "close"))
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def json_request(
    path: str,
    port: int,
    payload: object,
    headers: Mapping[str, str] | None = None,
    keepalive: bool = False,
) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return http_request("POST", path, port, body=body, headers=headers, keepalive=keepalive)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server closes the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1."):
        raise ConnectionError("no HTTP response")
    status = int(lines[0].split(b" ", 2)[1])
    length: int | None = None
    close = lines[0].startswith(b"HTTP/1.0")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
        elif name == b"transfer-encoding":
            return status, await reader.read(), True  # chunked: read to EOF, then close
    if length is None:
        return status, await reader.read(), True
    return status, await reader.readexactly(length), close


@dataclass
class Call:
    """One request: when it started (perf_counter), its latency (s), status and body."""

    start: float
    latency: float
    status: int | str
    body: bytes = b""


async def _lanes(
    port: int,
    next_request: Callable[[], tuple[int, bytes] | None],
    concurrency: int,
    timeout: float,
    record: Callable[[int, Call], None],
) -> None:
    """`concurrency` lanes, each one connection (reopened after a `Connection: close`)."""

    async def lane() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while (item := next_request()) is not None:
            index, request = item
            began = time.perf_counter()
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                writer.write(request)
                status, payload, close = await asyncio.wait_for(read_response(reader), timeout)
            except (OSError, EOFError, TimeoutError, ValueError, IndexError) as exc:
                record(index, Call(began, time.perf_counter() - began, type(exc).__name__))
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            record(index, Call(began, time.perf_counter() - began, status, payload))
            if close or b"Connection: close" in request[:1024]:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(lane() for _ in range(concurrency)))


def fire(
    port: int, requests: Sequence[bytes], concurrency: int, timeout: float = 60
) -> tuple[list[Call], float]:
    """Send `requests` over `concurrency` lanes (each a connection, reused when the request says
    keep-alive); return one `Call` per request, in order, and the wall time. With concurrency =
    len(requests) every call starts at the same instant (a burst)."""
    calls: list[Call] = [Call(0.0, 0.0, "unsent")] * len(requests)
    cursor = iter(range(len(requests)))

    def next_request() -> tuple[int, bytes] | None:
        index = next(cursor, None)
        return None if index is None else (index, requests[index])

    def record(index: int, call: Call) -> None:
        calls[index] = call

    async def main() -> float:
        started = time.perf_counter()
        lanes = max(1, min(concurrency, len(requests)))
        await _lanes(port, next_request, lanes, timeout, record)
        return time.perf_counter() - started

    return calls, asyncio.run(main())


def run_for(
    port: int, request: bytes, concurrency: int, seconds: float, timeout: float = 30
) -> tuple[list[Call], float]:
    """Closed loop: `concurrency` keep-alive connections each sending `request` again as soon as
    its answer is in, for `seconds`; return every call and the wall time."""
    calls: list[Call] = []

    async def main() -> float:
        deadline = time.perf_counter() + seconds

        def next_request() -> tuple[int, bytes] | None:
            return (0, request) if time.perf_counter() < deadline else None

        started = time.perf_counter()
        await _lanes(port, next_request, concurrency, timeout, lambda _, call: calls.append(call))
        return time.perf_counter() - started

    return calls, asyncio.run(main())


def error_code(call: Call) -> str:
    """The bridge's `error.code` of a failed call, or the start of its body."""
    try:
        return str(json.loads(call.body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return call.body[:80].decode(errors="replace")


def statuses(calls: Sequence[Call]) -> dict[str, int]:
    return dict(Counter(str(call.status) for call in calls))


# --- py-spy -------------------------------------------------------------------------------


class Profiler:
    """`py-spy record` (collapsed stacks) of some processes while the block runs."""

    def __init__(self, pids: Sequence[int], out: Path, rate: int = 200) -> None:
        self.pids, self.out, self.rate = list(pids), out, rate
        self._running: list[tuple[subprocess.Popen[bytes], Path]] = []

    @staticmethod
    def available() -> bool:
        return (BIN / "py-spy").exists()

    def __enter__(self) -> Profiler:
        if not self.available():
            raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy (needs root)")
        self.out.mkdir(parents=True, exist_ok=True)
        for pid in self.pids:
            path = self.out / f"py-spy-{pid}.txt"
            argv = [str(BIN / "py-spy"), "record", "--pid", str(pid), "--rate", str(self.rate),
                    "--nonblocking", "--format", "raw", "--output", str(path)]  # fmt: skip
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self._running.append((proc, path))
        time.sleep(1.0)  # py-spy attaches
        return self

    def __exit__(self, *exc: object) -> None:
        for proc, _ in self._running:
            proc.send_signal(signal.SIGINT)
        for proc, _ in self._running:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def stacks(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for _, path in self._running:
            if path.exists():
                for line in path.read_text(errors="replace").splitlines():
                    stack, _, count = line.rpartition(" ")
                    if count.isdigit():
                        found[stack] += int(count)
        return found


def summarise_stacks(
    stacks: Mapping[str, int], groups: Sequence[tuple[str, tuple[str, ...]]], top: int = 15
) -> dict[str, Any]:
    """Shares of samples: each sample goes to the first group (in order) one of whose needles
    appears in its stack (so put the narrow bridge-level groups before the libraries they call);
    plus the top leaf ("self") frames and the top bridge/actions frames by inclusive share."""
    total = sum(stacks.values()) or 1
    grouped: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        label = next(
            (name for name, needles in groups if any(needle in stack for needle in needles)),
            "other",
        )
        grouped[label] += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for function in {re.sub(r":\d+\)$", ")", frame) for frame in frames}:
            if "bridge/" in function or "actions/" in function:
                inclusive[function] += count

    def pct(n: int) -> float:
        return round(100 * n / total, 1)

    return {
        "samples": total,
        "groups_pct": {name: pct(grouped[name]) for name, _ in [*groups, ("other", ())]},
        "top_self_pct": [(frame[:110], pct(n)) for frame, n in own.most_common(top)],
        "top_bridge_inclusive_pct": [(f[:110], pct(n)) for f, n in inclusive.most_common(top)],
    }


# --- machine and results ------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        mem_gb = round(int(first.split()[1]) / 1024 / 1024, 1)
    except (OSError, IndexError, ValueError):
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "bridge", "actions", "triggers", "sim"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    code = subprocess.run(
        ["git", "log", "-1", "--format=%h", "--", "bridge", "actions", "triggers", "sim",
         "gunicorn.conf.py", "requirements.txt"],
        cwd=ROOT, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit,
        "code_commit": code + ("+dirty" if dirty else ""),  # the last change to what is measured
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass
class Round:
    """One measurement of one target (the bridge or its reference) in the A/B sequence."""

    target: str
    index: int
    params: dict[str, Any]
    metrics: dict[str, Any]


@dataclass
class Comparison:
    """One line of the ratio table: the bridge's figure, its reference's, their ratio, the goal."""

    name: str
    bridge: float | None
    reference: float | None
    unit: str
    reference_label: str
    ratio: float | None
    goal: str
    met: bool | None
    detail: str = ""

    def row(self) -> list[str]:
        met = {True: "met", False: "**not met**", None: ""}[self.met]
        bridge = f"{fmt(self.bridge)} {self.unit}".strip()
        reference = (
            f"{self.reference_label}: {fmt(self.reference)} {self.unit}".strip()
            if self.reference_label
            else "-"
        )
        ratio = "-" if self.ratio is None else f"{self.ratio:.2f} x"
        return [self.name, bridge, reference, ratio, self.goal, met]


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


@dataclass
class Panel:
    """One chart panel: a metric of every round as bars, or a histogram of values."""

    title: str
    unit: str
    metric: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    values: list[float] = field(default_factory=list)
    lines: dict[str, float] = field(default_factory=dict)
    targets: tuple[str, ...] = ()  # only these targets' rounds (all when empty)


@dataclass
class Result:
    benchmark: str
    backend: str
    description: str
    command: str = field(default_factory=lambda: shlex.join(["python", "-m", *sys_argv_module()]))
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    machine: dict[str, Any] = field(default_factory=machine_info)
    config: dict[str, Any] = field(default_factory=dict)
    rounds: list[Round] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_round(self, target: str, params: dict[str, Any], metrics: dict[str, Any]) -> Round:
        index = sum(1 for r in self.rounds if r.target == target and r.params == params)
        entry = Round(target, index, params, metrics)
        self.rounds.append(entry)
        line = ", ".join(f"{k}={v}" for k, v in params.items())
        shown = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
        print(f"  round    : {target} #{index} {line} {json.dumps(shown)}", flush=True)
        return entry

    def values(self, target: str, metric: str, **params: Any) -> list[Any]:
        return [
            r.metrics.get(metric)
            for r in self.rounds
            if r.target == target and all(r.params.get(k) == v for k, v in params.items())
        ]

    def median(self, target: str, metric: str, **params: Any) -> float | None:
        return median(self.values(target, metric, **params))

    def pair_ratios(self, a: str, b: str, metric: str, **params: Any) -> list[float | None]:
        """`a`/`b` of each A/B pair (rounds measured back to back), in order."""
        return [
            ratio(x, y)
            for x, y in zip(self.values(a, metric, **params), self.values(b, metric, **params),
                            strict=False)
        ]  # fmt: skip

    def pair_ratio(self, a: str, b: str, metric: str, **params: Any) -> float | None:
        """The median of the per-pair ratios: each pair shares the machine's load of its
        moment, so this moves less with load swings than the ratio of the two medians."""
        value = median(self.pair_ratios(a, b, metric, **params))
        return None if value is None else round(value, 3)

    def to_dict(self) -> dict[str, Any]:
        self.machine["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        return asdict(self)

    def print_table(self) -> None:
        print(f"{self.benchmark} on {self.backend}: {self.description}")
        for line in comparison_table(self.comparisons):
            print("  " + line)
        for note in self.notes:
            print(f"  note     : {note}")

    def write(self, out: Path, panels: Sequence[Panel] = (), chart: bool = True) -> Path:
        """Write `<benchmark>-<backend>.json` (and `.png`) into `out`; print one RESULT line."""
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{self.benchmark}-{self.backend}"
        data = self.to_dict()
        stem.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        if chart and panels:
            draw(self, panels, stem.with_suffix(".png"))
        print(f"  written  : {stem}.json" + (" and .png" if chart and panels else ""))
        brief = {k: v for k, v in self.summary.items() if k != "profile"}
        print(
            "RESULT " + json.dumps({"file": str(stem.with_suffix(".json")), **brief}, default=str)
        )
        return stem.with_suffix(".json")


def sys_argv_module() -> list[str]:
    """`bench.<script>` and its arguments, as the run was started."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec is not None else Path(sys.argv[0]).stem
    return [name, *sys.argv[1:]]


def comparison_table(rows: Sequence[Comparison]) -> list[str]:
    """Markdown lines of the comparisons."""
    head = ["work", "bridge", "reference (same run)", "ratio (median of A/B pairs)", "goal", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.row()) + " |" for c in rows]
    return lines


COLOURS = {"bridge": "#1f77b4", "ingest": "#1f77b4", "stub": "#9e9e9e"}  # references: orange


def draw(result: Result, panels: Sequence[Panel], path: Path) -> None:
    """One PNG: a panel per figure; bars in the A/B order they were measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel.values:
            ax.hist(panel.values, bins=40, color="#1f77b4")
            ax.set_xlabel(panel.unit)
        else:
            chosen = [
                r
                for r in result.rounds
                if all(r.params.get(k) == v for k, v in panel.params.items())
                and r.metrics.get(panel.metric) is not None
                and (not panel.targets or r.target in panel.targets)
            ]
            labels = [f"{r.target}\n#{r.index}" for r in chosen]
            heights = [float(r.metrics[panel.metric]) for r in chosen]
            colours = [COLOURS.get(r.target, "#ff7f0e") for r in chosen]
            ax.bar(range(len(chosen)), heights, color=colours)
            ax.set_xticks(range(len(chosen)), labels, fontsize=7)
            ax.set_ylabel(panel.unit)
        for name, value in panel.lines.items():
            ax.axhline(value, color="red", linestyle="--", linewidth=1, label=name)
        if panel.lines:
            ax.legend(fontsize=7)
        ax.set_title(panel.title, fontsize=9)
    fig.suptitle(
        f"{result.benchmark} on {result.backend} ({result.machine['cores']} cores,"
        f" {result.machine['commit']}, {result.started[:16]})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
