"""Load benchmark: N concurrent `query_agent` calls against a slow (3 s) simulated ZappWay.

Starts the simulator (a real server on a free port, one org on a custom 100000/min plan, a
`latency` fault on `/query`), runs `flask --app bridge migrate`, starts the bridge under gunicorn
with `gunicorn.conf.py`, creates a connection on a 100000/min plan, warms every worker up (before
the latency fault is added), then starts N `POST /v1/actions/query_agent` at the same instant.
While they run it samples the memory of the gunicorn master and all its descendants (sum of
VmRSS, and of Pss from smaps_rollup) every 100 ms. It prints p50/p90/p99/max latency (measured at
the client, from the start of the burst), status counts, errors, the peak memory, when the
simulator saw the calls arrive and how long it took to answer them, and the configuration used,
as text and as one `RESULT {...}` JSON line.

    .venv/bin/python bench/query_agent_load.py [--requests 1000] [--worker-class gthread|gevent]
        [--workers W] [--threads T] [--worker-connections C] [--action-threads A]
        [--redis] [--postgres] [--latency 3] [--baseline] [--py-spy SECONDS] [--keep]

`--baseline` sends the same burst straight to the simulator (no bridge): the floor that the
load generator and the simulator alone impose on this machine. Everything listens on 127.0.0.1;
every process started is stopped at the end (also on Ctrl-C or SIGTERM), the temporary directory
is removed unless --keep, and the whole run is bounded (--max-seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import runpy
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.config import Settings  # noqa: E402
from sim.testing import SimAdmin  # noqa: E402

HOST = "127.0.0.1"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/8"
SAMPLE_EVERY_S = 0.1
# The simulator as `python -m sim` runs it, with two load-only tunings (--plain-sim drops them):
# werkzeug's 128-connection listen queue overflows when 1000 connections arrive at once (the
# kernel then drops or resets some), and the latency fault re-checks for client disconnects every
# 50 ms, so 1000 waiting threads wake 20000 times a second and stretch a 3 s answer to 3.4-3.8 s.
# With a 0.5 s step a 3 s latency is still 3 s (the last step is shortened to the deadline).
SIM_LAUNCHER = """
import sys
import werkzeug.serving
werkzeug.serving.BaseWSGIServer.request_queue_size = 4096
from sim import fault_effects
fault_effects.STEP_S = 0.5
from sim.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not values:
        return None
    rank = max(1, min(len(values), -int(-q * len(values) // 1)))
    return round(values[rank - 1], 3)


def spread(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "max": round(ordered[-1], 3) if ordered else None,
    }


def wait_up(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited ({proc.returncode}); see {log}:\n{tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up within {timeout:.0f} s; see {log}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start(
    stack: ExitStack, argv: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """Start a process in its own session (so its whole group can be stopped) logging to `log`."""
    handle = stack.enter_context(log.open("wb"))
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    stack.callback(stop, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


# --- memory of a process tree -------------------------------------------------------------


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


def status_fields(pid: int) -> dict[str, int]:
    """VmRSS (kB) and Threads from /proc/<pid>/status; empty when the process is gone."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "Threads"):
                values[name] = int(rest.split()[0])
    except (OSError, ValueError):
        return {}
    return values


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class MemorySampler:
    """Samples the summed VmRSS / Pss / thread count of a process tree in a background thread."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak_rss_kb = self.peak_pss_kb = self.peak_threads = 0
        self.peak_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def snapshot(self) -> dict[str, int]:
        rss = pss = threads = 0
        pids = descendants(self.root)
        for pid in pids:
            fields = status_fields(pid)
            rss += fields.get("VmRSS", 0)
            threads += fields.get("Threads", 0)
            pss += pss_kb(pid)
        return {"rss_kb": rss, "pss_kb": pss, "threads": threads, "processes": len(pids)}

    def _loop(self) -> None:
        while not self._stop.is_set():
            snap = self.snapshot()
            self.samples += 1
            self.peak_rss_kb = max(self.peak_rss_kb, snap["rss_kb"])
            self.peak_pss_kb = max(self.peak_pss_kb, snap["pss_kb"])
            self.peak_threads = max(self.peak_threads, snap["threads"])
            self.peak_processes = max(self.peak_processes, snap["processes"])
            self._stop.wait(SAMPLE_EVERY_S)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def cpu_seconds(pids: list[int]) -> float:
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


def listen_overflows() -> int:
    """TcpExt ListenOverflows: connections dropped because an accept queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(table.get("ListenOverflows", 0))
    return 0


# --- backends -----------------------------------------------------------------------------


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create a throw-away database next to `test`, yield its URL, drop it afterwards."""
    import psycopg
    from psycopg import sql

    name = f"zwb_bench_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def gunicorn_settings(env: dict[str, str]) -> dict[str, Any]:
    """Evaluate gunicorn.conf.py under `env`: the settings gunicorn will really use."""
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


# --- the load -----------------------------------------------------------------------------


async def raw_post(
    host: str, port: int, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, bytes]:
    """One HTTP/1.1 POST on its own connection (`Connection: close`), read to EOF.

    A few hundred microseconds of CPU per call, against ~1 ms for httpx.AsyncClient: on two cores
    shared with the bridge and the simulator, the load generator must stay out of the way.
    """
    data = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        "Connection: close",
    ]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise ConnectionError("no HTTP response")
    return int(head.split(b" ", 2)[1]), payload


class Target:
    """Where the burst goes: the bridge's action, or (baseline) the simulator's query route."""

    def __init__(self, port: int, path: str, headers: dict[str, str], body: dict[str, Any]):
        self.port, self.path, self.headers, self.body = port, path, headers, body


async def burst(
    target: Target, count: int, timeout: float, client: str, tag: str
) -> tuple[list[dict[str, Any]], float, float]:
    """Start `count` calls together; return one record per call, the start (epoch) and wall time."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{target.port}",
        limits=limits,
        timeout=httpx.Timeout(timeout),
        headers=target.headers,
    ) as http:
        go = asyncio.Event()

        async def send(index: int) -> tuple[int, bytes]:
            body = {**target.body, "query": f"{tag} question {index}?"}
            if client == "raw":
                return await raw_post(HOST, target.port, target.path, body, target.headers)
            response = await http.post(target.path, json=body)
            return response.status_code, response.content

        async def one(index: int) -> dict[str, Any]:
            await go.wait()
            began = time.perf_counter()
            try:
                status, payload = await asyncio.wait_for(send(index), timeout)
            except (OSError, TimeoutError, httpx.HTTPError) as exc:
                return {"latency": time.perf_counter() - began, "status": type(exc).__name__}
            record: dict[str, Any] = {"latency": time.perf_counter() - began, "status": status}
            if status != 200:
                try:
                    record["code"] = json.loads(payload)["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    record["code"] = payload[:80].decode(errors="replace")
            return record

        tasks = [asyncio.create_task(one(i)) for i in range(count)]
        await asyncio.sleep(0.2)  # every task is parked on `go`
        started_epoch, started = time.time(), time.perf_counter()
        go.set()
        results = await asyncio.gather(*tasks)
        return results, started_epoch, time.perf_counter() - started


def dump_stacks(pids: list[int], out: Path) -> None:
    """`py-spy dump` every worker into `out` (needs root or ptrace rights)."""
    py_spy = ROOT / ".venv" / "bin" / "py-spy"
    with out.open("w") as handle:
        for pid in pids:
            handle.write(f"===== pid {pid}\n")
            handle.flush()
            subprocess.run(
                [str(py_spy), "dump", "--pid", str(pid)],
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=60,
                check=False,
            )


# --- main ---------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--requests", type=int, default=1000, help="concurrent calls (1000)")
    add(
        "--worker-class",
        choices=("gthread", "gevent"),
        help="WEB_WORKER_CLASS (default: gunicorn.conf.py's)",
    )
    add("--workers", type=int, help="WEB_CONCURRENCY (default: gunicorn.conf.py's)")
    add("--threads", type=int, help="WEB_THREADS, gthread only")
    add("--worker-connections", type=int, help="WEB_WORKER_CONNECTIONS, gevent only")
    add("--action-threads", type=int, help="BRIDGE_ACTION_THREADS (default: bridge's)")
    add("--redis", action="store_true", help=f"queue and rate limiter on {REDIS_URL}")
    add("--postgres", action="store_true", help="a fresh database on 127.0.0.1:5432")
    add("--latency", type=float, default=3.0, help="upstream answer time in seconds (3)")
    add("--baseline", action="store_true", help="no bridge: the burst goes to the simulator")
    add(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: raw asyncio HTTP/1.1 (default) or httpx.AsyncClient",
    )
    add("--plain-sim", action="store_true", help="run `python -m sim` without the tunings")
    add("--warmup", type=int, default=2, help="warm-up calls per worker before the burst (2)")
    add("--timeout", type=float, default=60, help="per-call client timeout in seconds (60)")
    add("--max-seconds", type=float, default=300, help="hard cap on the whole run (300)")
    add(
        "--py-spy",
        type=float,
        metavar="SECONDS",
        help="py-spy dump the workers this long into the burst (into the temporary dir)",
    )
    add("--keep", action="store_true", help="keep the temporary directory (logs)")
    add(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the bridge (repeatable)",
    )
    return parser.parse_args()


def bridge_env(
    args: argparse.Namespace,
    work: Path,
    sim_port: int,
    web_port: int,
    redis_url: str = "",
    **settings: object,
) -> dict[str, str]:
    """The bridge's environment for a bench run: production mode with a random secret key, a
    SQLite database in `work`, the simulator as ZappWay, the WEB_* options given on the command
    line (`args`), Redis with `--redis`, `settings` (None = unset), then each `--env` item."""
    prefixes = ("BRIDGE_", "WEB_", "ZAPPWAY_", "DATABASE_URL", "REDIS_URL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        {
            "BRIDGE_ENV": "production",
            "BRIDGE_SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
            "BRIDGE_VAR_DIR": str(work),
            "DATABASE_URL": f"sqlite:///{work / 'bridge.sqlite3'}",
            "ZAPPWAY_BASE_URL": f"http://{HOST}:{sim_port}/api/v1",
            "PORT": str(web_port),
            "XDG_RUNTIME_DIR": str(work),  # gunicorn's control socket, not ~/.gunicorn
            "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
        }
    )
    optional = {
        "WEB_WORKER_CLASS": args.worker_class,
        "WEB_CONCURRENCY": args.workers,
        "WEB_THREADS": args.threads,
        "WEB_WORKER_CONNECTIONS": args.worker_connections,
        **settings,
    }
    env.update({name: str(value) for name, value in optional.items() if value is not None})
    if args.redis:
        env["REDIS_URL"] = redis_url or REDIS_URL
    for assignment in args.env:
        name, _, value = assignment.partition("=")
        env[name] = value
    return env


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(f"gave up after {args.max_seconds:.0f} s"))
    signal.alarm(int(args.max_seconds))
    python = str(ROOT / ".venv" / "bin" / "python")
    work = Path(tempfile.mkdtemp(prefix="zwb-qa-load-"))
    sim_port, web_port = free_port(), free_port()
    env = bridge_env(args, work, sim_port, web_port, BRIDGE_ACTION_THREADS=args.action_threads)
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(subprocess.run, ["rm", "-rf", str(work)], check=False)
        if args.postgres and not args.baseline:
            env["DATABASE_URL"] = stack.enter_context(postgres_database())
        if args.redis and not args.baseline:
            import redis

            redis.Redis.from_url(REDIS_URL).flushdb()
            stack.callback(lambda: redis.Redis.from_url(REDIS_URL).flushdb())

        sim_log = work / "sim.log"
        sim_args = ["--host", HOST, "--port", str(sim_port)]
        launcher = ["-m", "sim"] if args.plain_sim else ["-c", SIM_LAUNCHER]
        sim = start(stack, [python, *launcher, *sim_args], env, sim_log)
        wait_up(f"http://{HOST}:{sim_port}/__admin/settings", sim, sim_log)
        admin = SimAdmin(f"http://{HOST}:{sim_port}")
        seeded = admin.seed(plan=100_000)
        api_key, agent_id = seeded["key"], seeded["agents"][0]["id"]

        web: subprocess.Popen[bytes] | None = None
        web_log = work / "web.log"
        config: dict[str, Any] = {}
        if args.baseline:
            target = Target(
                sim_port,
                f"/api/v1/agents/{agent_id}/query",
                {"Authorization": f"Bearer {api_key}"},
                {"streaming": False},
            )
        else:
            config = gunicorn_settings(env)
            config["action_threads"] = Settings.from_environ(env).action_threads
            subprocess.run(
                [python, "-m", "flask", "--app", "bridge", "migrate"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            gunicorn = str(ROOT / ".venv" / "bin" / "gunicorn")
            web = start(
                stack, [gunicorn, "-c", "gunicorn.conf.py", "bridge:create_app()"], env, web_log
            )
            base = f"http://{HOST}:{web_port}"
            wait_up(f"{base}/healthz", web, web_log)
            created = httpx.post(
                f"{base}/v1/connections", timeout=30, json={"api_key": api_key, "plan": "100000"}
            )
            if created.status_code != 201:
                raise SystemExit(f"creating the connection: {created.status_code} {created.text}")
            token = created.json()["token"]
            target = Target(
                web_port,
                "/v1/actions/query_agent",
                {"Authorization": f"Bearer {token}"},
                {"agent_id": agent_id},
            )
            # Warm-up without the latency fault: every worker opens its pools and rate bucket.
            warm = max(0, args.warmup * int(config["workers"]))
            if warm:
                results, _, _ = asyncio.run(burst(target, warm, args.timeout, args.client, "warm"))
                bad = [r for r in results if r["status"] != 200]
                if bad:
                    raise SystemExit(f"warm-up failed: {bad[:3]}\n{tail(web_log)}")
        admin.add_fault("latency", path="/query", seconds=args.latency)
        admin.clear_requests()

        sampler = MemorySampler(web.pid if web else sim.pid)
        idle = sampler.snapshot()
        sampler.start()
        overflows = listen_overflows()
        tree = descendants(web.pid) if web else []
        cpu_before = (cpu_seconds(tree), cpu_seconds([sim.pid]), time.process_time())
        spy: threading.Timer | None = None
        if args.py_spy is not None:
            pids = [p for p in descendants(web.pid) if p != web.pid] if web else [sim.pid]
            spy = threading.Timer(args.py_spy, dump_stacks, (pids, work / "py-spy.txt"))
            spy.start()
        results, started, wall = asyncio.run(
            burst(target, args.requests, args.timeout, args.client, "load")
        )
        if spy is not None:
            spy.join()
        sampler.stop()
        overflows = listen_overflows() - overflows
        cpu = {
            "bridge": round(cpu_seconds(tree) - cpu_before[0], 2),
            "simulator": round(cpu_seconds([sim.pid]) - cpu_before[1], 2),
            "load_generator": round(time.process_time() - cpu_before[2], 2),
        }
        calls = [call for call in admin.requests() if call["path"].endswith("/query")]
        upstream = {
            "calls": len(calls),
            "arrival_s": spread([call["at"] - started for call in calls]),
            "duration_s": spread([call["duration_s"] for call in calls]),
        }
        report(args, config, results, wall, sampler, idle, overflows, upstream, cpu, web_log, work)


def report(
    args: argparse.Namespace,
    config: dict[str, Any],
    results: list[dict[str, Any]],
    wall: float,
    sampler: MemorySampler,
    idle: dict[str, int],
    overflows: int,
    upstream: dict[str, Any],
    cpu: dict[str, float],
    web_log: Path,
    work: Path,
) -> None:
    statuses = Counter(str(r["status"]) for r in results)
    codes = Counter(r["code"] for r in results if "code" in r)
    latency = spread([r["latency"] for r in results])
    log_errors = []
    if web_log.exists():
        pattern = re.compile(r"\b(ERROR|CRITICAL|Traceback|WORKER TIMEOUT)\b")
        log_errors = [
            line
            for line in web_log.read_text(errors="replace").splitlines()
            if pattern.search(line)
        ]
    backend = "postgresql" if args.postgres else "sqlite"
    gevent = config.get("worker_class") == "gevent"
    summary: dict[str, Any] = {
        "requests": args.requests,
        "target": "simulator (baseline)" if args.baseline else "bridge",
        "worker_class": config.get("worker_class"),
        "workers": config.get("workers"),
        "threads": None if gevent else config.get("threads"),
        "worker_connections": config.get("worker_connections") if gevent else None,
        "action_threads": config.get("action_threads"),
        "database": None if args.baseline else backend,
        "limiter": None if args.baseline else ("redis" if args.redis else backend),
        "client": args.client,
        "sim": "plain" if args.plain_sim else "tuned",
        "upstream_latency_s": args.latency,
        **{f"{name}_s": value for name, value in latency.items()},
        "wall_s": round(wall, 3),
        "statuses": dict(statuses),
        "error_codes": dict(codes),
        "errors": sum(n for status, n in statuses.items() if status != "200"),
        "upstream": upstream,
        "peak_rss_mb": round(sampler.peak_rss_kb / 1024, 1),
        "peak_pss_mb": round(sampler.peak_pss_kb / 1024, 1),
        "idle_rss_mb": round(idle["rss_kb"] / 1024, 1),
        "peak_threads": sampler.peak_threads,
        "processes": sampler.peak_processes,
        "cpu_s": cpu,
        "listen_overflows": overflows,
        "log_error_lines": len(log_errors),
    }
    what = "simulator directly (baseline)" if args.baseline else "bridge"
    print(
        f"query_agent x {args.requests} concurrent -> {what}; upstream answers in "
        f"{args.latency:g} s; client {args.client}, simulator {summary['sim']}"
    )
    if not args.baseline:
        print(
            f"  config   : {summary['worker_class']} workers={summary['workers']} "
            f"threads={summary['threads']} worker_connections={summary['worker_connections']}"
            f" BRIDGE_ACTION_THREADS={summary['action_threads']} database={backend}"
            f" limiter={summary['limiter']}"
        )
    print(
        "  latency  : p50 {p50} s  p90 {p90} s  p99 {p99} s  max {max} s".format(**latency)
        + f"  (burst wall {wall:.2f} s)"
    )
    print(f"  statuses : {dict(statuses)}  errors {summary['errors']}  codes {dict(codes)}")
    print(
        "  upstream : {calls} calls; arrived after p50 {a[p50]} / p99 {a[p99]} / max {a[max]} s;"
        " answered in p50 {d[p50]} / p99 {d[p99]} / max {d[max]} s".format(
            calls=upstream["calls"], a=upstream["arrival_s"], d=upstream["duration_s"]
        )
    )
    who = "simulator" if args.baseline else "gunicorn master + workers"
    print(
        f"  memory   : peak RSS {summary['peak_rss_mb']} MB ({who}, {sampler.peak_processes}"
        f" processes; idle {summary['idle_rss_mb']} MB), peak PSS {summary['peak_pss_mb']} MB,"
        f" peak threads {sampler.peak_threads}"
    )
    cores = os.cpu_count() or 1
    print(
        f"  cpu      : bridge {cpu['bridge']} s, simulator {cpu['simulator']} s, load generator"
        f" {cpu['load_generator']} s during the burst ({cores} cores x {wall:.1f} s ="
        f" {cores * wall:.1f} s available)"
    )
    print(f"  kernel   : {overflows} listen-queue overflows during the burst")
    if log_errors:
        print(f"  web log  : {len(log_errors)} error lines, first ones:")
        for line in log_errors[:5]:
            print(f"    {line[:200]}")
    if args.keep:
        print(f"  logs     : {work}")
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    main()
