"""Gunicorn settings for the web process (read by `gunicorn -c gunicorn.conf.py`).

Most of a request's time is spent waiting on ZappWay, so the concurrency comes from cheap waiting,
not from processes. `WEB_WORKER_CLASS` picks how:

- `gevent` (default): gunicorn's gevent worker monkey-patches the worker process (sockets,
  threads, locks, `time.sleep`) before the app is imported, so every request and every
  DeadlineRunner action "thread" is a greenlet. Up to `WEB_WORKER_CONNECTIONS` requests per
  process; keep `BRIDGE_ACTION_THREADS` at least that high. `trio` must not be installed: httpcore
  imports it when present, and it breaks under the monkey-patching.
- `gthread`: `WEB_THREADS` OS threads per process (plus `BRIDGE_ACTION_THREADS` action threads).

`bench/query_agent_load.py` measures both (1,000 concurrent `query_agent`; see bench/README.md).
The access log is off unless `WEB_ACCESS_LOG=true`: the platform's router (Heroku) or the
reverse proxy in front already logs every request, and a log line per webhook cost 7 % of the
CPU of an inbound acknowledgement (`bench/ingest.py`). When on, inbound URL tokens are redacted.

Requests gunicorn refuses before the app sees them (a malformed request line, a line over 4094
bytes: 414, headers over gunicorn's limits: 431 or 400) are answered in the bridge's JSON error
envelope instead of gunicorn's HTML page: gunicorn writes them all through one function,
`gunicorn.util.write_error`, which `json_error` replaces (gunicorn offers no setting for it;
a worker subclass would have to copy all of `Worker.handle_error`). The status and reason stay
gunicorn's. A request body that stalls is bounded by the app itself (`WEB_BODY_TIMEOUT`, read
by `bridge.config`; see `bridge/web/body_timeout.py`), so it works the same under any server.

This file reads PORT / WEB_CONCURRENCY / WEB_WORKER_CLASS / WEB_WORKER_CONNECTIONS / WEB_THREADS /
WEB_ACCESS_LOG because gunicorn starts before the app; everything else is read by `bridge.config`.
"""

import json
import os
import re
import socket

import gunicorn.util
from gunicorn.glogging import Logger

WORKER_CLASSES = ("gevent", "gthread")


def listen_address(environ: dict[str, str]) -> str:
    """HOST:PORT to bind (HOST is read here too): every interface unless HOST says otherwise (a
    PaaS router must reach the dyno; `make run` sets HOST=127.0.0.1 so a development server
    stays on this machine)."""
    host = environ.get("HOST", "").strip() or "0.0.0.0"  # noqa: S104  # the platform's router
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 literal
    return f"{host}:{environ.get('PORT', '8000')}"


bind = listen_address(dict(os.environ))
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = os.environ.get("WEB_WORKER_CLASS", "").strip() or "gevent"
if worker_class not in WORKER_CLASSES:
    raise SystemExit(f"WEB_WORKER_CLASS must be one of {', '.join(WORKER_CLASSES)}")
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "1000"))  # gevent only
threads = int(os.environ.get("WEB_THREADS", "32"))  # gthread only
timeout = 120  # above the action deadline, below the ~100 s upstream edge plus margin
graceful_timeout = 25  # within the 30 s Heroku waits after SIGTERM; in-flight requests finish
keepalive = 5
# gunicorn's control socket (for `gunicornc`) defaults to one path per user: two servers on one
# machine (`make run` beside `make demo`, or several web processes of a scale-out on one host)
# shared it, and stopping one deleted the other's. Nothing here uses it; signals still work.
control_socket_disable = True
errorlog = "-"
accesslog = "-" if os.environ.get("WEB_ACCESS_LOG", "").lower() in ("1", "true", "yes") else None
# Path and status only: no headers (tokens travel in headers), no query strings with cursors.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'


class RedactingLogger(Logger):
    """gunicorn's logger, with the secret token of inbound URLs (`/in/<token>`) hidden."""

    INBOUND_TOKEN = re.compile(r"^/+in/[^/?]+")

    def atoms(self, resp, req, environ, request_time):  # type: ignore[no-untyped-def]
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = self.INBOUND_TOKEN.sub("/in/<redacted>", atoms["U"] or "")
        return atoms


logger_class = RedactingLogger
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):  # type: ignore[no-untyped-def]
    """Before the workers fork: share one Prometheus directory (`bridge.infra.metrics`)."""
    from bridge.config import Settings
    from bridge.infra import metrics

    directory = Settings.metrics_directory()
    metrics.prepare_directory(directory)
    metrics.enable_multiprocess(directory)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker exited: its live gauges go, its counts stay in the sums."""
    from bridge.infra import metrics

    metrics.process_exited(worker.pid)


def json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's own refusals as `{"error": {"code", "message"}}` (code: the reason's slug;
    `internal_error` for a 500, as the app names its own)."""
    message = " ".join((mesg or reason).split())[:250]
    code = re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_")
    code = "internal_error" if status_int == 500 else code
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    gunicorn.util.write_nonblock(sock, head.encode("latin-1") + body)


gunicorn.util.write_error = json_error
