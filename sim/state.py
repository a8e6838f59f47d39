"""The simulator's whole in-memory state, behind one lock (the real server is threaded).

``Store`` owns the records, the switches, the clock, the fault rules, the limiter and the
request log; ``/__admin/reset`` returns it to a fresh start. Views reach it through
``current_store()``.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import current_app

from .clock import Clock, VirtualClock
from .faults import FaultBook
from .ids import IdFactory
from .models import Agent, ApiKey, Conversation, Datastore, Document, Org, Usage
from .ratelimit import FixedWindowLimiter
from .reqlog import RequestLog
from .settings import Settings

PROFILES = ("documented", "legacy")
EXTENSION = "zappway_sim"


class Store:
    """Everything one simulator app instance knows; hold ``lock`` while touching it."""

    def __init__(self, profile: str = "documented", seed: int = 0, clock: Clock | None = None):
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}")
        self.lock = threading.RLock()
        self.clock = clock if isinstance(clock, VirtualClock) else VirtualClock(clock)
        self.initial_profile = profile
        self.ids = IdFactory(seed)
        self.faults = FaultBook(seed)
        self.limiter = FixedWindowLimiter()
        self.log = RequestLog()
        # Set on reset and on fault clearing so stalled and sleeping requests let go.
        self.release = threading.Event()
        self._seq = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything: records, faults, log, switches, clock offset, profile."""
        with self.lock:
            self.release.set()
            self.release = threading.Event()
            self.profile = self.initial_profile
            self.settings = Settings(rate_limit_enabled=self.profile == "documented")
            self.rate_limit_explicit = False
            self.orgs: dict[str, Org] = {}
            self.keys: dict[str, ApiKey] = {}
            self.agents: dict[str, Agent] = {}
            self.datastores: dict[str, Datastore] = {}
            self.documents: dict[str, Document] = {}
            self.conversations: dict[str, Conversation] = {}
            self.usage: dict[str, Usage] = {}
            self.ids.reset()
            self.faults.reset()
            self.limiter.reset()
            self.log.reset()
            self.clock.reset()

    @property
    def legacy(self) -> bool:
        return self.profile == "legacy"

    def now(self) -> float:
        return self.clock.now()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def set_profile(self, profile: str) -> None:
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {', '.join(PROFILES)}")
        self.profile = profile
        if not self.rate_limit_explicit:
            self.settings.rate_limit_enabled = profile == "documented"

    def apply_settings(self, changes: dict[str, Any]) -> None:
        self.settings.apply(changes)
        if "rate_limit_enabled" in changes:
            self.rate_limit_explicit = True

    def release_waiters(self) -> None:
        """Wake every request sleeping in a latency, stall or drip fault."""
        self.release.set()
        self.release = threading.Event()

    def usage_of(self, org_id: str) -> Usage:
        return self.usage.setdefault(org_id, Usage())

    def find_agent(self, ref: str) -> Agent | None:
        """Look an agent up by id, or by ``@handle`` as the ancestor allows."""
        if ref.startswith("@"):
            return next((a for a in self.agents.values() if a.handle == ref[1:]), None)
        return self.agents.get(ref)

    def documents_of(self, datastore_id: str) -> list[Document]:
        docs = [d for d in self.documents.values() if d.datastore_id == datastore_id]
        return sorted(docs, key=lambda d: d.seq)


def current_store() -> Store:
    store: Store = current_app.extensions[EXTENSION]
    return store
