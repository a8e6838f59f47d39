"""What each console page shows, read through the features' own services; no Flask here.

The console keeps the API's rules because it calls the same functions: keys are verified by
`connections.service` before they are stored, sources and hooks are looked up through their
owners (`find_owned`), and secrets are only ever in the answer that created them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from bridge.config import Settings
from bridge.connections import service as connections
from bridge.console import activity, chart
from bridge.hooks import subscriptions as hooks
from bridge.infra.errors import NotFound
from bridge.infra.models import Connection, Source, Subscription
from bridge.runtime import Runtime
from bridge.sync import inbound_events, sources
from bridge.sync import state as sync_state
from bridge.upstream.errors import UpstreamError

log = logging.getLogger(__name__)
ROTATE_AFTER_DAYS = 90  # ZappWay's advice: rotate API keys every 90 days
CHART_HOURS = 3
EVENTS_PAGE = 25


@dataclass(frozen=True)
class ConnectionRow:
    """A connection as the lists show it: never the key or the token, only their last 4."""

    id: str
    label: str
    plan: str
    limit: int
    organization: str
    api_key_last4: str
    token_last4: str
    key_status: str
    created_at: datetime
    last_used_at: datetime | None
    key_set_at: datetime
    key_age_days: int
    revoked: bool

    @property
    def rotation_due(self) -> bool:
        return not self.revoked and self.key_age_days >= ROTATE_AFTER_DAYS


def row(connection: Connection, settings: Settings, now: datetime) -> ConnectionRow:
    key_set_at = connection.api_key_set_at or connection.created_at
    return ConnectionRow(
        id=connection.id, label=connection.label, plan=connection.plan,
        limit=connections.plan_limit(settings, connection.plan),
        organization=connection.upstream_org_name or connection.upstream_org_id or "",
        api_key_last4=connection.api_key_last4, token_last4=connection.token_last4,
        key_status=connection.key_status, created_at=connection.created_at,
        last_used_at=connection.last_used_at, key_set_at=key_set_at,
        key_age_days=max(0, (now - key_set_at).days), revoked=connection.is_revoked,
    )  # fmt: skip


def visible_connection(session: Session, viewer_connection_id: str | None, cid: str) -> Connection:
    """The connection at `cid` if the viewer may see it: the admin (None) sees every one, a
    connection's session only its own.

    Raises:
        NotFound: missing, or not the viewer's (the same answer, so ids cannot be probed).
    """
    if viewer_connection_id is not None and viewer_connection_id != cid:
        raise NotFound("No such connection")
    found = connections.find(session, cid)
    if found is None:
        raise NotFound("No such connection")
    return found


def connection_rows(
    session: Session, settings: Settings, viewer_connection_id: str | None, now: datetime
) -> list[ConnectionRow]:
    """The connections the viewer may see, newest last (revoked ones included, marked)."""
    if viewer_connection_id is not None:
        return [row(visible_connection(session, viewer_connection_id, viewer_connection_id),
                    settings, now)]  # fmt: skip
    return [row(c, settings, now) for c in connections.list_all(session, include_revoked=True)]


@dataclass(frozen=True)
class Overview:
    connection: ConnectionRow
    usage: activity.Usage
    chart: chart.Chart
    recent: list[activity.Seen]
    documents: dict[str, int]
    sources: int
    hooks: int
    failing_hooks: int

    @property
    def new_addresses(self) -> list[str]:
        return sorted({seen.address for seen in self.recent if seen.new_address})

    @property
    def unusual_errors(self) -> list[activity.Seen]:
        return [seen for seen in self.recent if seen.unusual_error]


def overview(
    session: Session, settings: Settings, connection: Connection, now: datetime
) -> Overview:
    """The connection's page: key age, usage against the plan, recent requests, flags."""
    summary = row(connection, settings, now)
    usage = activity.usage(session, connection.id, summary.limit, CHART_HOURS, now)
    subscriptions = hooks.list_owned(session, connection.id)
    return Overview(
        connection=summary, usage=usage, chart=chart.draw(usage),
        recent=activity.recent(session, connection.id, now),
        documents=sync_state.document_counts(session, connection.id),
        sources=len(sources.list_owned(session, connection.id)),
        hooks=len(subscriptions), failing_hooks=len(hooks.failing(session, subscriptions)),
    )  # fmt: skip


@dataclass(frozen=True)
class SourceRow:
    id: str
    provider: str
    datastore_id: str
    created_at: datetime
    documents: dict[str, int]


def source_rows(session: Session, connection_id: str) -> list[SourceRow]:
    return [
        SourceRow(
            s.id,
            s.provider,
            s.datastore_id,
            s.created_at,
            sync_state.document_counts(session, connection_id, s.id),
        )
        for s in sources.list_owned(session, connection_id)
    ]


@dataclass(frozen=True)
class EventsPage:
    source: SourceRow
    inbound_path: str  # the owner may see the URL again (its token is not the signing secret)
    events: list[dict[str, Any]]
    status: str | None
    before: int | None
    older: int | None  # `before` for the next page, when there may be one


def events_page(
    session: Session, runtime: Runtime, source: Source, *, status: str | None,
    before: int | None,
) -> EventsPage:  # fmt: skip
    """One page of the source's events, newest first, each document's fate beside it."""
    found = inbound_events.page(session, source.id, limit=EVENTS_PAGE, before=before,
                                status=status)  # fmt: skip
    older = found[-1]["id"] if len(found) == EVENTS_PAGE else None
    counts = sync_state.document_counts(session, source.connection_id, source.id)
    summary = SourceRow(source.id, source.provider, source.datastore_id, source.created_at, counts)
    path = sources.describe(source, runtime.box)["inbound_path"]
    return EventsPage(summary, path, found, status, before, older)


@dataclass(frozen=True)
class HookRow:
    """A hook with the state people read: active, failing (with why), disabled (with why)."""

    id: str
    target_url: str
    agent_id: str | None
    event: str
    state: str
    reason: str | None
    created_at: datetime
    deliveries: list[dict[str, Any]] = field(default_factory=list)


def hook_rows(session: Session, connection_id: str) -> list[HookRow]:
    subscriptions = hooks.list_owned(session, connection_id)
    failing = hooks.failing(session, subscriptions)
    return [_hook_row(s, failing.get(s.id)) for s in subscriptions]


def hook_detail(session: Session, subscription: Subscription) -> HookRow:
    found = _hook_row(subscription, hooks.failing(session, [subscription]).get(subscription.id))
    return HookRow(**{**found.__dict__, "deliveries": hooks.history(session, subscription)})


def _hook_row(subscription: Subscription, failing_reason: str | None) -> HookRow:
    state, reason = subscription.state, subscription.state_reason
    if state == "active" and failing_reason is not None:
        state, reason = "failing", failing_reason
    return HookRow(subscription.id, subscription.target_url, subscription.agent_id,
                   subscription.event_type, state, reason, subscription.created_at)  # fmt: skip


def choices(runtime: Runtime, connection_id: str, kind: str) -> list[dict[str, Any]] | None:
    """The connection's ZappWay agents or datastores for a dropdown, or None when ZappWay cannot
    say right now (the form then takes a typed id)."""
    try:
        zappway = connections.open_zappway(runtime, connection_id, max_wait=2)
        found = zappway.list_agents() if kind == "agents" else zappway.list_datastores()
    except (UpstreamError, connections.ConnectionRevoked) as exc:
        log.info("console.choices_unavailable kind=%s reason=%s", kind, exc.code)
        return None
    return found[:500]


def utcnow() -> datetime:
    return datetime.now(UTC)
