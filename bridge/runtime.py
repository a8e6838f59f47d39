"""The shared services every feature uses, built once per app by `create_app`; no Flask here.

Web requests, worker tasks and the CLI all reach the database, the secret box, ZappWay and user
URLs through one `Runtime`, so a feature's service code is the same whichever process runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bridge.config import Settings
from bridge.infra import storage
from bridge.infra.crypto import SecretBox
from bridge.infra.hot_reads import HotReads
from bridge.infra.outbound import OutboundClient
from bridge.upstream.client import UpstreamPool


@dataclass(frozen=True)
class Runtime:
    """Settings, storage, secrets and the two HTTP clients (ZappWay; user-supplied URLs)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    reads: HotReads  # the one-row read of every authenticated request
    box: SecretBox
    upstream: UpstreamPool
    outbound: OutboundClient

    @classmethod
    def build(
        cls, settings: Settings, upstream_transport: httpx.BaseTransport | None = None
    ) -> Runtime:
        engine = storage.make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessionmaker(engine, expire_on_commit=False),
            reads=HotReads(engine),
            box=SecretBox((settings.secret_key, *settings.old_secret_keys)),
            upstream=UpstreamPool(settings, upstream_transport),
            outbound=OutboundClient(settings.allow_private_targets, settings.hook_timeout_s),
        )

    def close(self) -> None:
        """Release pools (tests build many apps in one process)."""
        self.upstream.close()
        self.outbound.close()
        self.reads.close()
        self.engine.dispose()
