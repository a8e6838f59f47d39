"""`GET /metrics`: the Prometheus text format, for the admin token or BRIDGE_METRICS_TOKEN.

The events every process counted (`bridge.infra.metrics`) are summed over the machine's
processes in multiprocess mode; the states are read at scrape time, so every web process tells
the same: documents pending and dead, the queue's depth and the age of its next task, and when
each background role last beat. Each request is counted here too, by its URL rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, request
from huey import Huey
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from bridge.infra import crypto, metrics, queue
from bridge.infra.errors import ClientError
from bridge.infra.models import PendingDocument
from bridge.runtime import Runtime
from bridge.web.api import Answer, Endpoint, endpoint
from bridge.web.context import runtime, service, settings

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)
DOCUMENT_STATES = ("pending", "dead")


@bp.get("/metrics")
@endpoint(
    Endpoint(
        "Prometheus metrics",
        {200: Answer({"type": "string"}, "The Prometheus text format", media_type="text/plain")},
        errors=(401, 403),
        description="Bearer the admin token or BRIDGE_METRICS_TOKEN.",
    )
)
def scrape() -> Response:
    _authorize()
    registry = CollectorRegistry()
    directory = metrics.multiprocess_directory()
    if directory is None:
        registry.register(_Registered())
    else:
        MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(_State(runtime(), service(Huey)))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _authorize() -> None:
    """A bearer of either token; 403 when neither is configured, 401 for any other caller."""
    accepted = [token for token in (settings().metrics_token, settings().admin_token) if token]
    if not accepted:
        message = "Metrics are disabled: set BRIDGE_METRICS_TOKEN or BRIDGE_ADMIN_TOKEN"
        raise ClientError(403, "metrics_disabled", message)
    header = request.headers.get("Authorization", "")
    presented = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    # Every configured token is compared, so the time taken says nothing about which matched.
    matches = [crypto.same_secret(presented, token) for token in accepted]
    if not presented or not any(matches):
        raise ClientError(401, "metrics_unauthorized", "Metrics token missing or wrong")


def count_request(response: Response) -> Response:
    """After every request: count it by URL rule (never the path: it may hold a token)."""
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    metrics.get().http_requests.labels(rule, request.method, str(response.status_code)).inc()
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.after_request(count_request)


class _Registered(Collector):
    """This process's own series (single-process mode: tests, `flask run`)."""

    def collect(self) -> Iterator[Metric]:
        metrics.get()  # the series exist from the first scrape on, counted or not
        yield from metrics.REGISTRY.collect()


class _State(Collector):
    """What is a state, not an event: read from the database and the queue at scrape time."""

    def __init__(self, runtime: Runtime, huey: Huey) -> None:
        self.runtime, self.huey = runtime, huey

    def collect(self) -> Iterator[Metric]:
        """Each state on its own: one that cannot be read (its store down, a database not yet
        migrated) is left out and logged, and the scrape still answers with everything else;
        an outage is when the counted series matter most."""
        for read in (self._documents, self._queue, self._beats):
            try:
                families = list(read())
            except Exception as exc:  # the store's own error, whatever its driver
                log.warning("metrics.state_unreadable state=%s reason=%s", read.__name__,
                            type(exc).__name__)  # fmt: skip
                continue
            yield from families

    def _documents(self) -> Iterator[Metric]:
        documents = GaugeMetricFamily(
            "bridge_sync_documents", "CMS documents waiting to reach ZappWay (pending) or "
            "given up on until replayed (dead)", labels=["state"],
        )  # fmt: skip
        with self.runtime.engine.connect() as db:
            counts = dict(
                db.execute(
                    select(PendingDocument.state, func.count())
                    .where(PendingDocument.state.in_(DOCUMENT_STATES))
                    .group_by(PendingDocument.state)
                ).all()
            )
        for state in DOCUMENT_STATES:
            documents.add_metric([state], counts.get(state, 0))
        yield documents

    def _queue(self) -> Iterator[Metric]:
        waiting = queue.backlog(self.huey)
        yield GaugeMetricFamily(
            "bridge_queue_depth", "Tasks waiting in the queue", value=waiting["pending"]
        )
        yield GaugeMetricFamily(
            "bridge_queue_oldest_task_age_seconds",
            "How long the next task to run has waited in the queue (0 when empty)",
            value=waiting["oldest_wait_s"] or 0.0,
        )

    def _beats(self) -> Iterator[Metric]:
        seen = GaugeMetricFamily(
            "bridge_worker_last_seen_timestamp_seconds",
            "When each background role last beat (Unix time)", labels=["role"],
        )  # fmt: skip
        for role, at in sorted(queue.last_beats(self.runtime.engine).items()):
            seen.add_metric([role], at.timestamp())
        yield seen
