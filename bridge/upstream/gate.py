"""A run's send gate: whether any of its calls has left the bridge yet.

A synchronous action that passes BRIDGE_ACTION_DEADLINE is normally handed to a job (504 "ZappWay
is still answering"). That is only true once a call was sent: a run still queued behind its key's
own rate budget has asked ZappWay nothing, and a 504 would send the platform to poll a job that
is itself about to fail as rate-limited. The runner binds a `SendGate` to the run; the client
passes through `admit()` between taking a budget slot and sending, and never waits for a slot
past the gate's deadline. At the deadline the runner calls `withdraw()`: when nothing was sent
the run is called off (a later `admit()` raises) and the caller gets `NeverSent`, a 429 with
Retry-After, instead of a job to poll.

A writer may also set a precondition on its calls (`sending_only_if`): checked as each request is
about to leave, after its budget slot, so a wait for the budget or a retry's backoff never
separates the check from the send. The document writers check there that they still hold their
documents' leases.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from bridge.upstream.errors import UpstreamRateLimited

_current: ContextVar[SendGate | None] = ContextVar("zwb_send_gate", default=None)
_precondition: ContextVar[Callable[[], None] | None] = ContextVar(
    "zwb_send_precondition", default=None
)


class NeverSent(UpstreamRateLimited):
    """Raised when a run's deadline passed while it still waited for its key's rate budget."""

    code = "rate_budget_wait"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "The call never left the bridge: it was still waiting for this connection's "
            "ZappWay rate budget when the action deadline passed, and nothing was sent to "
            f"ZappWay; retry in {max(1, math.ceil(retry_after))} s",
            upstream_status=0,
            retry_after=retry_after,
        )


class CallWithdrawn(NeverSent):
    """Raised inside a withdrawn run when it reaches the point of sending (nobody waits for it)."""


class SendGate:
    """One run's record of whether it sent anything, and the runner's way to call it off."""

    def __init__(self, deadline_s: float) -> None:
        self._deadline = time.monotonic() + deadline_s
        self._lock = threading.Lock()
        self._sent = False
        self._withdrawn = False
        self._retry_after: Callable[[], float] = lambda: 1.0

    def max_wait(self, wanted: float) -> float:
        """How long a call may wait for a budget slot: never past the deadline until a call
        was sent (after that the run belongs to a job, which may wait its full share)."""
        with self._lock:
            if self._sent:
                return wanted
            return max(0.0, min(wanted, self._deadline - time.monotonic()))

    def waiting(self, retry_after: Callable[[], float]) -> None:
        """Record how to tell the caller when the budget frees up, should the run be withdrawn."""
        self._retry_after = retry_after

    def admit(self) -> None:
        """Mark the run as sending (the caller is about to write to ZappWay).

        Raises:
            CallWithdrawn: the runner already answered the caller that nothing was sent.
        """
        with self._lock:
            if self._withdrawn:
                raise CallWithdrawn(self._retry_after())
            self._sent = True

    def withdraw(self) -> bool:
        """Call the run off if nothing was sent yet; return whether it was."""
        with self._lock:
            if not self._sent:
                self._withdrawn = True
            return self._withdrawn

    def retry_after(self) -> float:
        """Seconds until the key's budget has a slot again (as the limiter last reported)."""
        return max(1.0, self._retry_after())

    @contextmanager
    def bound(self) -> Iterator[None]:
        """Make this gate the current run's for every upstream call made inside the block."""
        token = _current.set(self)
        try:
            yield
        finally:
            _current.reset(token)


def current_gate() -> SendGate | None:
    """The gate of the run this code executes in, if the runner bound one."""
    return _current.get()


@contextmanager
def sending_only_if(check: Callable[[], None]) -> Iterator[None]:
    """Run `check` as each upstream request made inside the block is about to be sent; it
    raises (any error but an `UpstreamError`, so the call is not retried) to send nothing.
    Inside another such block, both checks run."""
    outer = _precondition.get()

    def both() -> None:
        if outer is not None:
            outer()
        check()

    token = _precondition.set(both if outer is not None else check)
    try:
        yield
    finally:
        _precondition.reset(token)


def check_before_sending() -> None:
    """The client's side of `sending_only_if`: raises what the block's check raises."""
    check = _precondition.get()
    if check is not None:
        check()
