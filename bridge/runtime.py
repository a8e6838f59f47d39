"""The services an action needs outside a request: built once per app, shared by web and worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from bridge.config import Settings
from bridge.connections import service as connections
from bridge.documents.service import DocumentMap
from bridge.infra.crypto import SecretBox
from bridge.infra.outbound import Deliverer
from bridge.operation import ActionContext
from bridge.upstream.client import UpstreamPool
from bridge.upstream.zappway import ZappWay


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    sessions: sessionmaker[Session]
    box: SecretBox
    pool: UpstreamPool
    deliverer: Deliverer

    @contextmanager
    def action_context(
        self, connection_id: str, max_wait: float | None = None
    ) -> Iterator[ActionContext]:
        """Open a context for one action run; re-reads the connection so revocation applies."""
        with self.sessions() as session:
            client = connections.open_client(
                session, self.box, self.pool, self.settings, connection_id, max_wait
            )
        yield ActionContext(
            zappway=ZappWay(client),
            connection_id=connection_id,
            documents=DocumentMap(self.sessions, connection_id),
        )
