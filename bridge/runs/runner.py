"""Running an action: its context, the one place `perform` is called, and the deadline.

`ActionRunner.execute` opens the connection's ZappWay operations and documents (re-reading the
connection, so revocation applies at once), calls the action's `perform` and dumps its output.
`within_deadline` runs a long action in a per-process thread pool and stops waiting at
BRIDGE_ACTION_DEADLINE: the run carries on, its result lands in a job row, and the caller gets
`ActionStillRunning` (504 with the job id). A run that sent nothing by then (it was still
waiting for its key's rate budget) is called off instead and answers `NeverSent` (429 with
Retry-After): there is no answer to wait for.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from bridge.connections import service as connections
from bridge.connections.service import Credential
from bridge.documents.service import DocumentService
from bridge.documents.store import DocumentMap
from bridge.infra import metrics
from bridge.infra.errors import BridgeError
from bridge.operation import Action, ActionContext
from bridge.runs import jobs
from bridge.runtime import Runtime
from bridge.upstream.gate import NeverSent, SendGate

log = logging.getLogger(__name__)


class ActionRunner:
    """Runs actions for connections; one per process (its thread pool serves the deadline)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pool = ThreadPoolExecutor(
            max_workers=runtime.settings.action_threads, thread_name_prefix="action"
        )
        # Under gunicorn's gevent workers a run is a greenlet of its own: a pool's futures,
        # queue and condition variables cost ~5 % of a call there, and buy nothing (the
        # number of runs is already bounded by the worker's connections).
        self._green = _gevent_patched()

    def context(self, caller: Credential) -> ActionContext:
        """What `perform` may use for this connection (no database read: the caller's
        credential was read when it authenticated)."""
        zappway = connections.zappway_for(self.runtime, caller)
        documents = DocumentService(zappway, DocumentMap(self.runtime.sessions, caller.id))
        return ActionContext(zappway=zappway, connection_id=caller.id, documents=documents)

    def execute(self, action: Action, caller: Credential, data: dict[str, Any]) -> Any:
        """Run an action's perform and dump its output (the one place actions are executed)."""
        started, outcome = time.monotonic(), "internal_error"
        try:
            result = action.dump(action.perform(self.context(caller), data))
            outcome = "ok"
            return result
        except BridgeError as exc:
            outcome = exc.code
            raise
        finally:
            seconds = time.monotonic() - started
            metrics.get().action_seconds.labels(action.key, outcome).observe(seconds)

    def within_deadline(self, action: Action, caller: Credential, data: dict[str, Any]) -> Any:
        """Return the action's output, or hand the run to a job once the deadline passes.

        Raises:
            ActionStillRunning: the deadline passed; the job will hold the result.
        """
        deadline_s = self.runtime.settings.action_deadline_s
        run = _Run(SendGate(deadline_s))
        started = self._start(self._detachable, run, action, caller, data)
        try:
            return started.result(timeout=deadline_s)
        except FutureTimeout:
            if run.gate.withdraw():  # nothing left the bridge: no job, the caller retries
                if started.done():
                    return started.result()
                log.info("jobs.never_sent action=%s", action.key)
                raise NeverSent(run.gate.retry_after()) from None
            with run.lock:
                if not started.done():
                    run.detached = True
                    with self.runtime.sessions() as session:
                        jobs.create(
                            session, run.job_id, caller.id, action.key, data, None, "running"
                        )
                        session.commit()
            if run.detached:
                log.info("jobs.detached job=%s action=%s", run.job_id, action.key)
                raise jobs.ActionStillRunning(run.job_id) from None
            return started.result()

    def _detachable(
        self, run: _Run, action: Action, caller: Credential, data: dict[str, Any]
    ) -> Any:
        try:
            with run.gate.bound():
                result = self.execute(action, caller, data)
        except Exception as exc:
            with run.lock:
                if run.detached:
                    jobs.finish(self.runtime, run.job_id, error=exc)
            raise
        with run.lock:
            if run.detached:
                jobs.finish(self.runtime, run.job_id, result=result)
        return result

    def _start(self, function: Callable[..., Any], *args: Any) -> _Started:
        if self._green:
            return _Greenlet(function, *args)
        return self._pool.submit(function, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Started(Protocol):
    """A run under way: a pool's Future, or a greenlet behind the same two methods."""

    def result(self, timeout: float | None = None) -> Any: ...

    def done(self) -> bool: ...


class _Greenlet:
    """A run as a greenlet of its own, switched into directly: it runs at once, until it
    first waits (on ZappWay's socket), and when it ends it switches straight back to the
    request waiting for it. `gevent.spawn` and `join` went through the hub's loop both ways:
    ~73 µs of a call's CPU in context, against ~48 µs for this (`bench/PROFILE.md`).

    The greenlet's parent is the waiting request's greenlet, so its end resumes that request
    with no hub in between. Once the request stops waiting (the deadline passed, or anything
    else interrupted it), the run is handed to the hub (`parent = hub`): it goes on, and its
    end returns to the loop instead of into a request that has moved on. The run's function
    never raises out of the greenlet; its outcome is kept for `result`.
    """

    def __init__(self, function: Callable[..., Any], *args: Any) -> None:
        from greenlet import getcurrent, greenlet

        self._call = (function, args)
        self._outcome: tuple[bool, Any] | None = None
        self._finished: Any = None  # a gevent Event, made only for a second waiter
        self._waiter = getcurrent()
        self._greenlet = greenlet(self._main, parent=self._waiter)

    def _main(self) -> object:
        function, args = self._call
        try:
            self._outcome = (True, function(*args))
        except BaseException as exc:  # kept for `result`, raised there
            self._outcome = (False, exc)
        if self._finished is not None:
            self._finished.set()
        return _FINISHED

    def result(self, timeout: float | None = None) -> Any:
        """The run's output (or its exception); FutureTimeout when it is still running."""
        if self._outcome is None:
            if self._greenlet:  # started, and was handed to the hub: wait like anyone else
                return self._wait_again(timeout)
            self._start_and_wait(timeout)
        assert self._outcome is not None
        succeeded, value = self._outcome
        if succeeded:
            return value
        raise value

    def _start_and_wait(self, timeout: float | None) -> None:
        from gevent import get_hub

        hub = get_hub()
        timer = hub.loop.timer(timeout) if timeout is not None else None
        if timer is not None:  # the deadline resumes this greenlet instead of the run's end
            timer.start(self._waiter.switch, _DEADLINE)
        try:
            woken_by = self._greenlet.switch()
        except BaseException:
            self._greenlet.parent = hub  # interrupted (a kill, a Timeout): the run goes on
            raise
        finally:
            if timer is not None:
                timer.close()
        if woken_by is _DEADLINE:
            self._greenlet.parent = hub
            raise FutureTimeout

    def _wait_again(self, timeout: float | None) -> Any:
        from gevent.event import Event

        if self._finished is None:
            self._finished = Event()
        if not self._finished.wait(timeout):
            raise FutureTimeout
        return self.result()

    def done(self) -> bool:
        return self._outcome is not None


_DEADLINE = object()  # what the deadline's timer resumes the waiting request with
_FINISHED = object()  # what a run's greenlet returns to its parent


def _gevent_patched() -> bool:
    """Whether this process runs under gevent's monkey-patching (gunicorn's gevent workers)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))


class _Run:
    def __init__(self, gate: SendGate) -> None:
        self.gate = gate
        self.lock = threading.Lock()
        self.detached = False

    @functools.cached_property
    def job_id(self) -> str:
        """Made when the run is handed to a job (under `lock`), not for every call: drawing
        it from the OS's random source was 2 % of a call's CPU."""
        return jobs.new_job_id()
