"""A source's received events as its owner sees them, and their retention.

Each event shows its verification result and the fate of each document it carried: pending,
delivered with the ZappWay id, dead with the reason, or superseded by a newer version. Refused
requests and keyless deliveries are deleted after BRIDGE_INBOUND_RETENTION_DAYS; an accepted
delivery's key is kept, since it is what refuses a replay of that signed request (several CMSs
sign no time that would end a replay's window).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from bridge.infra.models import InboundEvent, PendingDocument
from bridge.infra.storage import purge_before
from bridge.runtime import Runtime

PAGE = 100
STATUSES = ("accepted", "rejected", "unmappable")


def page(
    session: Session, source_id: str, *, limit: int, before: int | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Newest first, `limit` at a time (`before` an event id pages back, `status` filters)."""
    query = select(InboundEvent).where(InboundEvent.source_id == source_id)
    if before is not None:
        query = query.where(InboundEvent.id < before)
    if status is not None:
        query = query.where(InboundEvent.status == status)
    rows = session.scalars(query.order_by(InboundEvent.id.desc()).limit(limit)).all()
    cms_ids = {c["cms_id"] for row in rows for c in json.loads(row.changes_json)}
    documents = {
        doc.cms_id: doc
        for doc in session.scalars(
            select(PendingDocument)
            .where(PendingDocument.source_id == source_id)
            .where(PendingDocument.cms_id.in_(cms_ids))
        )
    }
    return [_view(row, documents) for row in rows]


def _view(row: InboundEvent, documents: dict[str, PendingDocument]) -> dict[str, Any]:
    changes = []
    for change in json.loads(row.changes_json):
        doc = documents.get(change["cms_id"])
        fate: dict[str, Any] = {"state": "unknown"}
        if doc is not None and doc.version > change["version"]:
            fate = {"state": "superseded", "by_version": doc.version}
        elif doc is not None:
            fate = {"state": doc.state, "upstream_id": doc.upstream_id, "reason": doc.last_error}
        changes.append({**change, **fate})
    return {
        "id": row.id,
        "received_at": row.received_at.isoformat(),
        "status": row.status,
        "reason": row.reason,
        "delivery_key": row.delivery_key,
        "documents": changes,
    }


def purge_old(runtime: Runtime) -> int:
    """Delete refused and keyless events past their retention; returns how many."""
    events = cast(Table, InboundEvent.__table__)
    before = datetime.now(UTC) - timedelta(days=runtime.settings.inbound_retention_days)
    return purge_before(runtime.engine, events.c.received_at, before,
                        only=events.c.delivery_key.is_(None))  # fmt: skip
