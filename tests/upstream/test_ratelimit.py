"""The per-key budget holds across processes, on every shared backend."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from bridge.config import Settings
from bridge.infra.marks import read_mark
from bridge.infra.storage import make_engine, migrate
from bridge.upstream.errors import UpstreamRateLimited, UpstreamUnavailable
from bridge.upstream.ratelimit import WINDOW_MS, KeyRateLimiter
from bridge.upstream.redis_budget import EPOCH_MARK
from bridge.upstream.sqlite_budget import SQLITE_LOCK_POLL_S
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]
# A window, plus the millisecond pyrate-limiter adds so the oldest call has surely left it.
MOST_RETRY_AFTER_S = (WINDOW_MS + 1) / 1000


def test_budget_admits_the_limit_then_says_when_to_retry(tmp_path):
    """With 3/min, three calls pass and the fourth raises with a Retry-After of up to the
    limiter's window (a minute and its slack; all four may fall in the same millisecond)."""
    limiter = KeyRateLimiter(Settings.for_tests({"secret_key": TEST_SECRET, "var_dir": tmp_path}))
    try:
        for _ in range(3):
            limiter.acquire("fp-a", 3, max_wait=0)
        with pytest.raises(UpstreamRateLimited) as caught:
            limiter.acquire("fp-a", 3, max_wait=0)
        assert 1 <= caught.value.retry_after <= MOST_RETRY_AFTER_S
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
        engine = make_engine(settings["database_url"])  # remembers Redis's epoch
        migrate(engine)
        engine.dispose()
    sim_admin.clear_requests()
    results = run_two_processes(settings, seeded["key"], per_minute, each)
    upstream = [r for r in sim_admin.requests() if r["path"].endswith("/me")]
    assert sum(r["ok"] for r in results) == per_minute
    assert sum(r["limited"] for r in results) == 2 * each - per_minute
    assert len(upstream) == per_minute
    assert all(r["status"] == 200 for r in upstream)


SHORT_WINDOW_MS = 2_000


def redis_settings(tmp_path: Path, redis_url: str) -> dict:
    """Settings for a Redis budget whose epoch is remembered in a migrated SQLite database."""
    database_url = f"sqlite:///{tmp_path / 'marks.sqlite3'}"
    engine = make_engine(database_url)
    migrate(engine)
    engine.dispose()
    return {
        "secret_key": TEST_SECRET,
        "var_dir": tmp_path / "var",
        "database_url": database_url,
        "redis_url": redis_url,
    }


def test_flushed_redis_holds_every_key_for_one_window(tmp_path, redis_url):
    """After FLUSHDB, two processes' limiters hold every key until one window has passed."""
    settings = Settings.for_tests(redis_settings(tmp_path, redis_url))
    first = KeyRateLimiter(settings, window_ms=SHORT_WINDOW_MS)
    second = KeyRateLimiter(settings, window_ms=SHORT_WINDOW_MS)
    try:
        for _ in range(3):
            first.acquire("fp-busy", 3, max_wait=0)
        redis.Redis.from_url(redis_url).flushdb()  # Redis forgets every window
        flushed_at = time.monotonic()
        with pytest.raises(UpstreamRateLimited) as caught:
            second.acquire("fp-busy", 3, max_wait=0)
        assert 1 <= caught.value.retry_after <= SHORT_WINDOW_MS / 1000
        with pytest.raises(UpstreamRateLimited):
            first.acquire("fp-never-used", 3, max_wait=0)  # the quarantine covers every key
        second.acquire("fp-busy", 3, max_wait=SHORT_WINDOW_MS / 1000 + 1)
        assert time.monotonic() - flushed_at >= SHORT_WINDOW_MS / 1000 - 0.1
        first.acquire("fp-never-used", 3, max_wait=0)  # after the window, budgets are back
    finally:
        first.close()
        second.close()


def test_first_start_with_empty_redis_and_database_is_not_held(tmp_path, redis_url):
    """Nothing anywhere is a first start: calls pass at once and the epoch is remembered."""
    raw = redis_settings(tmp_path, redis_url)
    limiter = KeyRateLimiter(Settings.for_tests(raw), window_ms=SHORT_WINDOW_MS)
    try:
        limiter.acquire("fp-new", 2, max_wait=0)
        limiter.acquire("fp-new", 2, max_wait=0)
        limiter.acquire("fp-other", 2, max_wait=0)
    finally:
        limiter.close()
    engine = make_engine(raw["database_url"])
    try:
        remembered = read_mark(engine, EPOCH_MARK)
    finally:
        engine.dispose()
    assert remembered == redis.Redis.from_url(redis_url).get("zwb:ratelimit:epoch").decode()


def test_unreachable_redis_is_an_honest_503(tmp_path):
    """A budget store that refuses connections raises UpstreamUnavailable (503), never a 500."""
    settings = {
        "secret_key": TEST_SECRET,
        "var_dir": tmp_path / "var",
        "database_url": f"sqlite:///{tmp_path / 'marks.sqlite3'}",
        "redis_url": "redis://127.0.0.1:1/0",  # nothing listens on port 1
    }
    limiter = KeyRateLimiter(Settings.for_tests(settings))
    try:
        with pytest.raises(UpstreamUnavailable) as caught:
            limiter.acquire("fp-a", 3, max_wait=0)
        assert caught.value.status_code == 503
        assert limiter.seconds_until_free("fp-a") >= 1
    finally:
        limiter.close()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_admissions_do_not_queue_behind_the_limiters_lock(backend, request, tmp_path):
    """pyrate-limiter's Limiter holds one process-wide lock across each put; on Redis that
    spanned a round trip, and under gevent every upstream call of the process queued behind it.
    With that lock held by another thread, admissions still answer at once: the Redis bucket's
    Lua script is the atomic check, the SQLite bucket's the database's write lock. (A refusal
    takes the lock to read its Retry-After.)"""
    settings = {"secret_key": TEST_SECRET, "var_dir": tmp_path / "var"}
    if backend == "redis":
        settings = redis_settings(tmp_path, request.getfixturevalue("redis_url"))
    limiter = KeyRateLimiter(Settings.for_tests(settings))
    held, release = threading.Event(), threading.Event()

    def hold_the_limiters_lock() -> None:
        with limiter._limiter.lock:  # the library's lock, taken as its own acquire takes it
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_limiters_lock)
    holder.start()
    try:
        assert held.wait(5)
        limiter.acquire("fp-lockfree", 2, max_wait=0)
        limiter.acquire("fp-lockfree", 2, max_wait=0)
        assert holder.is_alive()  # both admitted while the lock was held
        release.set()
        with pytest.raises(UpstreamRateLimited):
            limiter.acquire("fp-lockfree", 2, max_wait=0)
    finally:
        release.set()
        holder.join()
        limiter.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "redis"])
def test_threads_sharing_a_budget_admit_exactly_its_limit(backend, request, tmp_path):
    """40 concurrent acquires that do not wait, from 8 threads of one process, admit exactly
    12 on a 12/min key: none over (Redis admits without the Limiter's lock) and none refused
    with budget to spare (the Limiter's non-blocking acquire gave up on its busy lock)."""
    settings = {"secret_key": TEST_SECRET, "var_dir": tmp_path / "var"}
    if backend == "postgres":
        settings["database_url"] = request.getfixturevalue("pg_url")
    if backend == "redis":
        settings = redis_settings(tmp_path, request.getfixturevalue("redis_url"))
    limiter = KeyRateLimiter(Settings.for_tests(settings))

    def one() -> bool:
        try:
            limiter.acquire("fp-threads", 12, max_wait=0)
            return True
        except UpstreamRateLimited:
            return False

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            admitted = list(pool.map(lambda _: one(), range(40)))
    finally:
        limiter.close()
    assert admitted.count(True) == 12


def test_sqlite_budget_waits_its_turn_on_the_databases_write_lock(tmp_path):
    """The processes sharing the SQLite budget take turns through the database's own write
    lock: while another connection holds it, a call that may not wait for the budget still
    waits for the lock (polled every SQLITE_LOCK_POLL_S from Python, never in SQLite's busy
    handler, which would stop every greenlet of a gevent process), then is admitted."""
    settings = Settings.for_tests({"secret_key": TEST_SECRET, "var_dir": tmp_path})
    limiter = KeyRateLimiter(settings)
    try:
        limiter.acquire("fp-turn", 5, max_wait=0)
        bucket = limiter._factory.get(limiter._factory.wrap_item("fp-turn"))
        assert bucket.conn.execute("PRAGMA busy_timeout").fetchone() == (0,)
        assert bucket.lock.poll_interval == SQLITE_LOCK_POLL_S <= 0.005
        other = sqlite3.connect(settings.ratelimit_sqlite_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's turn
        admitted = threading.Event()

        def call() -> None:
            limiter.acquire("fp-turn", 5, max_wait=0)
            admitted.set()

        caller = threading.Thread(target=call)
        caller.start()
        assert not admitted.wait(0.2)  # waiting for the lock, not refused, not through
        other.execute("COMMIT")
        caller.join(5)
        assert admitted.is_set()
        count = other.execute('SELECT COUNT(*) FROM "zwb_fp-turn"').fetchone()[0]
        assert count == 2
        other.close()
    finally:
        limiter.close()


def _fill_window(path: Path, table: str, ages_s: list[float]) -> None:
    """Rows as the bucket would have appended them, oldest first (`ages_s` descending)."""
    now_ms = time.time_ns() // 1_000_000
    with sqlite3.connect(path) as other:
        other.executemany(
            f'INSERT INTO "{table}" (name, item_timestamp) VALUES (?, ?)',  # noqa: S608
            [(table, now_ms - int(age * 1000)) for age in ages_s],
        )
    other.close()


def _vm_steps(connection: sqlite3.Connection, call: Any) -> int:
    """SQLite virtual-machine steps (in hundreds) that `call` makes on `connection`."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    connection.set_progress_handler(count, 100)
    try:
        call()
    finally:
        connection.set_progress_handler(None, 100)
    return steps


def test_sqlite_budget_counts_its_window_exactly_at_any_size(tmp_path):
    """The window is counted from its first and last rows: 500 rows older than the window
    are not counted, 999 inside it are, so a 1,000/min key admits one more call, then refuses."""
    settings = Settings.for_tests({"secret_key": TEST_SECRET, "var_dir": tmp_path})
    limiter = KeyRateLimiter(settings)
    try:
        limiter._factory.get(limiter._factory.wrap_item("fp-exact"))  # creates the table
        ages = [100 - i / 100 for i in range(500)] + [50 - i / 100 for i in range(999)]
        _fill_window(settings.ratelimit_sqlite_path, "zwb_fp-exact", ages)
        limiter.acquire("fp-exact", 1000, max_wait=0)  # 999 in the window before it
        with pytest.raises(UpstreamRateLimited):
            limiter.acquire("fp-exact", 1000, max_wait=0)
        limiter.acquire("fp-exact", 1002, max_wait=0)  # a larger plan has room for it
    finally:
        limiter.close()


def test_sqlite_budget_check_does_not_grow_with_the_window(tmp_path):
    """A check costs the same SQLite work with 60,000 calls in the window as with 10: the
    library's COUNT(*) walked every one of them, inside the lock every process waits on."""
    settings = Settings.for_tests({"secret_key": TEST_SECRET, "var_dir": tmp_path})
    limiter = KeyRateLimiter(settings)
    try:
        steps = {}
        for key, rows in (("fp-few", 10), ("fp-many", 60_000)):
            limiter._factory.get(limiter._factory.wrap_item(key))  # creates the table
            _fill_window(settings.ratelimit_sqlite_path, f"zwb_{key}",
                         [55 - 50 * i / rows for i in range(rows)])  # fmt: skip
            bucket = limiter._factory.get(limiter._factory.wrap_item(key))
            steps[key] = _vm_steps(bucket.conn, lambda k=key: limiter.acquire(k, 100_000, 0))
        assert steps["fp-many"] <= steps["fp-few"] + 5, steps  # the COUNT(*) made ~120,000 more
    finally:
        limiter.close()


def test_sqlite_budget_admits_in_one_statement(tmp_path):
    """An admission is the write lock, one statement that counts the window and inserts, and
    the commit; a refusal adds the library's count and its retry-after, then rolls back."""
    settings = Settings.for_tests({"secret_key": TEST_SECRET, "var_dir": tmp_path})
    limiter = KeyRateLimiter(settings)
    try:
        limiter.acquire("fp-one", 2, max_wait=0)  # creates the table
        bucket = limiter._factory.get(limiter._factory.wrap_item("fp-one"))
        statements: list[str] = []
        caller = threading.current_thread()  # not the library's leak thread, on a timer

        def trace(sql: str) -> None:
            if threading.current_thread() is caller:
                statements.append(sql)

        bucket.conn.set_trace_callback(trace)
        limiter.acquire("fp-one", 2, max_wait=0)
        kinds = [" ".join(sql.split()[:2]).upper() for sql in statements]
        assert kinds == ["BEGIN IMMEDIATE", "INSERT INTO", "COMMIT"], statements
        statements.clear()
        with pytest.raises(UpstreamRateLimited) as caught:
            limiter.acquire("fp-one", 2, max_wait=0)
        assert 1 <= caught.value.retry_after <= MOST_RETRY_AFTER_S
        assert not any(sql.upper().startswith("COMMIT") for sql in statements), statements
        bucket.conn.set_trace_callback(None)
        count = bucket.conn.execute('SELECT COUNT(*) FROM "zwb_fp-one"').fetchone()[0]
        assert count == 2
    finally:
        limiter.close()


@pytest.mark.postgres
@pytest.mark.parametrize("calls", [0, 1])
def test_closing_a_postgresql_budget_closes_its_connections(pg_url, tmp_path, calls):
    """The PostgreSQL budget opens a connection pool when it is built. Closing the limiter
    ends its connections whether or not a call ever made a bucket: before, a limiter closed
    without a call (an app that never reached ZappWay) kept its pool open until exit."""
    import sqlalchemy as sa

    name = f"zwb_budget_{uuid.uuid4().hex[:10]}"
    url = f"{pg_url}&application_name={name}"
    settings = {"secret_key": TEST_SECRET, "var_dir": tmp_path / "var", "database_url": url}
    admin = sa.create_engine(pg_url)

    def connections() -> int:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
        with admin.connect() as conn:
            return int(conn.execute(sa.text(query), {"name": name}).scalar_one())

    try:
        limiter = KeyRateLimiter(Settings.for_tests(settings))
        for _ in range(calls):
            limiter.acquire("fp-close", 5, max_wait=0)
        deadline = time.monotonic() + 5
        while connections() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)  # the pool connects in its own thread
        assert connections() >= 1
        limiter.close()
        deadline = time.monotonic() + 5
        while connections() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert connections() == 0
    finally:
        admin.dispose()


GEVENT_LEAKS = """
from gevent import monkey; monkey.patch_all()
import json, sqlite3, sys, threading, time
from pathlib import Path
from bridge.config import Settings
from bridge.console.signin import SignInLimiter, bucket_name
from bridge.upstream.ratelimit import KeyRateLimiter

died = []
threading.excepthook = lambda hook: died.append(f"{hook.thread.name}: {hook.exc_value!r}")
settings = Settings.for_tests({"secret_key": sys.argv[1], "var_dir": Path(sys.argv[2])})
budget, sign_ins = KeyRateLimiter(settings), SignInLimiter(settings)
budget._factory.leak_interval = sign_ins._open()[0].leak_interval = 50  # ms, not 10 s
budget.acquire("fp-gevent", 60, max_wait=0)  # an upstream call, then a console sign-in
sign_ins.admit("192.0.2.1", "zwb_gevent0000")
tables = ["zwb_fp-gevent", "zwb_" + bucket_name("ip", "192.0.2.1")]
with sqlite3.connect(settings.ratelimit_sqlite_path) as db:
    stale_ms = time.time_ns() // 1_000_000 - 120_000  # two windows ago: only the leak drops it
    for table in tables:
        db.executemany(f'INSERT INTO "{table}" (name, item_timestamp) VALUES (?, ?)',
                       [(table, stale_ms)] * 5)

def stale():
    with sqlite3.connect(settings.ratelimit_sqlite_path) as db:
        return {t: db.execute(f'SELECT COUNT(*) FROM "{t}" WHERE item_timestamp <= ?',
                              (stale_ms,)).fetchone()[0] for t in tables}

deadline = time.monotonic() + 5
while any(stale().values()) and time.monotonic() < deadline:
    time.sleep(0.05)  # gevent's: the leaks run meanwhile
print(json.dumps({"died": died, "stale": stale()}))
budget.close()
sign_ins.close()
"""


def test_both_budgets_leak_their_old_entries_under_gevent(tmp_path: Path) -> None:
    """Under gunicorn's gevent worker, the upstream budget and the console's sign-in limiter
    each drop entries older than their window, and no thread dies. pyrate-limiter's leak
    thread runs `asyncio.run`; under gevent every such thread is a greenlet of the one OS
    thread, so the second limiter's leak found the first's loop running and died with
    "asyncio.run() cannot be called from a running event loop" on each new bucket (a
    traceback in the web log per sign-in), leaving that limiter's old entries forever."""
    done = subprocess.run(  # a process of its own: monkey-patching must not leak into pytest
        [sys.executable, "-c", GEVENT_LEAKS, TEST_SECRET, str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["died"] == []
    assert report["stale"] == dict.fromkeys(report["stale"], 0)
