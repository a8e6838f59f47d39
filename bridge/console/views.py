"""The console's pages (`/console...`) and the after-request hook that records API activity.

Server-rendered Jinja pages over the features' services. A session cookie (signed, HttpOnly,
SameSite=Lax, Secure outside development and test) says who is signed in; every POST carries
the session's CSRF token or is refused with 400. Pages that show a new secret (a connection's
token and signing secret, a source's secret, a hook's secret) are the answers to the POST that
made it, never stored or shown again. Every response is `no-store` and framed by a strict
Content-Security-Policy (scripts and styles from /console/static only).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    Response,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from marshmallow import ValidationError

from bridge.connections import service as connections
from bridge.console import activity, service, signin
from bridge.console import session as console_session
from bridge.console.activity import ActivityLog, Record
from bridge.console.session import COOKIE, MAX_AGE_S, Session, SessionCodec
from bridge.console.signin import SignInLimiter
from bridge.hooks import subscriptions as hooks
from bridge.hooks.tasks import HookTasks
from bridge.infra import crypto, jsontext
from bridge.infra.errors import BridgeError, ClientError, InvalidInput
from bridge.schemas import integer
from bridge.sync import inbound_events, sources
from bridge.sync.providers.providers import PROVIDERS
from bridge.sync.providers.setup import SETUPS
from bridge.sync.schemas import CreateSourceIn, source_options
from bridge.sync.tasks import SyncTasks
from bridge.web import context
from bridge.web.api import endpoint, page
from bridge.web.context import get_session, runtime, settings
from bridge.web.errors import classify

log = logging.getLogger(__name__)
bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"console.css": "text/css", "console.js": "text/javascript"}
PLANS = ("free", "pro")
EVENTS_BEFORE = integer(1)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
F = TypeVar("F", bound=Callable[..., Any])


# Activity: one after-request hook for the whole app (registered by the app factory).


def activity_hook(log: ActivityLog, proxy_hops: int) -> Callable[[Response], Response]:
    """The after-request hook that hands each connection's request to the activity log (an
    append to a per-process buffer: microseconds; the log writes in batches)."""

    def record_request(response: Response) -> Response:
        connection_id = context.request_connection_id()
        if connection_id is not None:
            current = context.current_request()
            rule = current.url_rule
            log.record(Record(
                connection_id, datetime.now(UTC), current.method, rule.rule if rule else "",
                activity.redact(current.path), response.status_code,
                context.address_of(current, proxy_hops),
            ))  # fmt: skip
        return response

    return record_request


# Sessions, CSRF and the answers' headers.


def _codec() -> SessionCodec:
    return context.service(SessionCodec)


def _current() -> Session:
    """The request's console session (anonymous when none, or when it no longer holds)."""
    if "console" not in g:
        found = _codec().loads(request.cookies.get(COOKIE))
        g.console = found if found is not None and _still_valid(found) else None
        if g.console is None:
            g.console = console_session.anonymous()
            g.console_changed = True
            g.console_ended = found is not None and found.who is not None
    return cast(Session, g.console)


def _still_valid(found: Session) -> bool:
    """A signed-in session holds while its credential does: the admin token unchanged, or the
    connection live with the same token (a rotation or a revocation ends it)."""
    if found.who is None:
        return True
    if found.is_admin:
        admin = settings().admin_token
        return bool(admin) and console_session.same(
            _codec().fingerprint(crypto.hash_token(admin)), found.fingerprint
        )
    connection = connections.find(get_session(), found.who)
    return (
        connection is not None
        and not connection.is_revoked
        and console_session.same(_codec().fingerprint(connection.token_hash), found.fingerprint)
    )


def _replace_session(new: Session) -> None:
    g.console, g.console_changed = new, True


@bp.before_request
def _check_csrf() -> None:
    """Every POST carries the session's CSRF token (the sign-in form too)."""
    if request.method == "POST" and not console_session.same(
        _current().csrf, request.form.get("csrf_token")
    ):
        raise ClientError(
            400, "csrf_failed",
            "This form did not come from this console session (or the session ended): "
            "reload the page and send it again",
        )  # fmt: skip


@bp.after_request
def _headers(response: Response) -> ResponseReturnValue:
    if g.get("console_changed"):
        response.set_cookie(
            COOKIE, _codec().dumps(g.console), max_age=MAX_AGE_S, path="/console",
            secure=not _insecure_cookies(), httponly=True, samesite="Lax",
        )  # fmt: skip
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _insecure_cookies() -> bool:
    """Plain-HTTP cookies only where the bridge runs without TLS on purpose."""
    return settings().env in ("development", "test")


@bp.app_template_filter("when")
def _when(value: datetime | str | None) -> str:
    if value is None:
        return "never"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


@bp.context_processor
def _template_context() -> dict[str, Any]:
    current = _current()
    return {
        "viewer": current,
        "csrf_token": current.csrf,
        "retention_days": settings().activity_retention_days,
    }


@bp.errorhandler(Exception)
def _error(exc: Exception) -> tuple[str, int, dict[str, str]]:
    """Errors in console pages are pages too (same status, same message as the API's)."""
    error = classify(exc)
    body = render_template("error.html", error=error, back=request.referrer)
    return body, error.status_code, error.headers()


def signed_in(view: F) -> F:
    """Pages for signed-in people only; anyone else goes to the sign-in page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        current = _current()
        if current.who is None:
            return redirect(url_for("console.sign_in", ended=1 if g.get("console_ended") else None))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def admin_only() -> None:
    if not _current().is_admin:
        raise ClientError(403, "admin_only", "Only the operator (the admin token) can do this")


def _connection(cid: str) -> Any:
    return service.visible_connection(get_session(), _current().connection_id, cid)


def _live(cid: str) -> Any:
    """The connection, which must not be revoked (for anything that changes it)."""
    connection = _connection(cid)
    if connection.is_revoked:
        raise ClientError(409, "revoked", "This connection is revoked: nothing can change it")
    return connection


NOTICES = {
    "signed_out": "Signed out.",
    "key_replaced": "The ZappWay key was replaced.",
    "revoked": "The connection was revoked.",
    "source_deleted": "The source was deleted.",
    "hook_deleted": "The hook was deleted.",
    "documents_replayed": "Dead documents queued again: {n}.",
    "events_replayed": "Events queued again: {n}.",
}


def _page(template: str, **values: Any) -> str:
    """Render a page; `?notice=<code>` shows one of `NOTICES` (never text from the URL)."""
    notice = NOTICES.get(request.args.get("notice", ""))
    if notice is not None:
        notice = notice.format(n=request.args.get("n", type=int) or 0)
    return render_template(template, notice=notice, **values)


def _base_url() -> str:
    return request.host_url.rstrip("/")


# Signing in and out.


@bp.get("")
@endpoint(page("Console: the start page"))
def index() -> ResponseReturnValue:
    current = _current()
    if current.who is None:
        return redirect(url_for("console.sign_in"))
    if current.is_admin:
        return redirect(url_for("console.connections_page"))
    return redirect(url_for("console.connection_page", cid=current.connection_id))


@bp.get("/sign-in")
@endpoint(page("Console: sign in (and how, on a fresh deploy)"))
def sign_in() -> str:
    return _page(
        "sign_in.html", admin_configured=bool(settings().admin_token),
        ended=request.args.get("ended") == "1", error=None,
    )  # fmt: skip


@bp.post("/sign-in")
@endpoint(page("Console: sign in with the admin token or a connection token"))
def sign_in_submit() -> Any:
    token = request.form.get("token", "").strip()
    if not token:
        raise InvalidInput("Paste the admin token or a connection token", fields=["token"])
    context.service(SignInLimiter).admit(context.client_address(), token)
    try:
        opened = signin.sign_in(context.runtime().reads, settings(), _codec(), token)
    except BridgeError as exc:
        log.info("console.sign_in_refused address=%s", context.client_address())
        body = _page("sign_in.html", admin_configured=bool(settings().admin_token), ended=False,
                     error=exc.message)  # fmt: skip
        return body, 401
    _replace_session(Session(csrf=console_session.anonymous().csrf, who=opened.who,
                             fingerprint=opened.fingerprint))  # fmt: skip
    return redirect(url_for("console.index"))


@bp.post("/sign-out")
@endpoint(page("Console: sign out"))
def sign_out() -> ResponseReturnValue:
    _replace_session(console_session.anonymous())
    return redirect(url_for("console.sign_in", notice="signed_out"))


@bp.get("/static/<name>")
@endpoint(page("Console: its stylesheet and script"))
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        raise ClientError(404, "not_found", "No such file")
    response = Response(_static_bytes(name), mimetype=STATIC_FILES[name])
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@functools.cache
def _static_bytes(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


# Connections.


@bp.get("/connections")
@endpoint(page("Console: connections (label, plan, last 4, created, last used, key status)"))
@signed_in
def connections_page() -> str:
    now = service.utcnow()
    rows = service.connection_rows(get_session(), settings(), _current().connection_id, now)
    return _page("connections.html", rows=rows, plans=PLANS,
                 default_plan=settings().default_plan)  # fmt: skip


@bp.post("/connections")
@endpoint(page("Console: create a connection from a ZappWay key (token shown once)"))
@signed_in
def create_connection() -> str:
    admin_only()
    api_key = connections.normalise_api_key(request.form.get("api_key", ""))
    plan = _plan(request.form.get("plan", ""), request.form.get("custom_plan", ""))
    label = request.form.get("label", "").strip()[:200] or None
    org = connections.verify_key(runtime(), api_key, plan)
    session = get_session()
    issued = connections.create(session, runtime().box, org, api_key=api_key, label=label,
                                plan=plan)  # fmt: skip
    session.commit()
    return _page(
        "connection_created.html", row=service.row(issued.connection, settings(), service.utcnow()),
        token=issued.token, signing_secret=issued.signing_secret, base_url=_base_url(),
    )  # fmt: skip


def _plan(choice: str, custom: str) -> str:
    if choice == "custom":
        if not custom.strip().isdigit() or not 1 <= int(custom) <= 999_999:
            raise InvalidInput("A custom plan is a number of requests per minute", fields=["plan"])
        return str(int(custom))
    if choice not in PLANS:
        raise InvalidInput("Pick free, pro or a custom number per minute", fields=["plan"])
    return choice


@bp.get("/connections/<cid>")
@endpoint(page("Console: a connection's key, usage and activity"))
@signed_in
def connection_page(cid: str) -> str:
    connection = _connection(cid)
    overview = service.overview(get_session(), settings(), connection, service.utcnow())
    return _page("connection.html", overview=overview, row=overview.connection)


@bp.post("/connections/<cid>/rotate-key")
@endpoint(page("Console: swap the connection's ZappWay key (verified first)"))
@signed_in
def rotate_key(cid: str) -> ResponseReturnValue:
    connection = _live(cid)
    new_key = connections.normalise_api_key(request.form.get("api_key", ""))
    org = connections.verify_replacement(runtime(), connection, new_key)
    connections.replace_api_key(connection, runtime().box, org, new_key)
    get_session().commit()
    return redirect(url_for("console.connection_page", cid=cid,
                            notice="key_replaced"))  # fmt: skip


@bp.post("/connections/<cid>/rotate-token")
@endpoint(page("Console: a new connection token (shown once; the old one stops)"))
@signed_in
def rotate_token(cid: str) -> str:
    connection = _live(cid)
    token = connections.rotate_token(connection)
    get_session().commit()
    if _current().connection_id == cid:  # the session follows its connection's new token
        fingerprint = _codec().fingerprint(connection.token_hash)
        _replace_session(Session(csrf=_current().csrf, who=cid, fingerprint=fingerprint))
    row = service.row(connection, settings(), service.utcnow())
    return _page("secret_shown.html", row=row, title="New connection token",
                 shown_label="Connection token", secret=token, base_url=_base_url(),
                 back=url_for("console.connection_page", cid=cid),
                 explain="The old token stopped working now. Paste this one into every "
                 "platform that used the old one.")  # fmt: skip


@bp.get("/connections/<cid>/revoke")
@endpoint(page("Console: confirm revoking a connection"))
@signed_in
def revoke_confirm(cid: str) -> str:
    connection = _live(cid)
    return _page(
        "confirm.html", title=f"Revoke “{connection.label}”?",
        explain="Its token stops working at once, in every process: the next API call with it "
        "answers 401. Its hooks and CMS syncs stop. This cannot be undone.",
        action=url_for("console.revoke", cid=cid), button="Revoke this connection",
        back=url_for("console.connection_page", cid=cid),
    )  # fmt: skip


@bp.post("/connections/<cid>/revoke")
@endpoint(page("Console: revoke a connection"))
@signed_in
def revoke(cid: str) -> ResponseReturnValue:
    connections.revoke(_live(cid))
    get_session().commit()
    if _current().connection_id == cid:
        _replace_session(console_session.anonymous())
        return redirect(url_for("console.sign_in", notice="revoked"))
    return redirect(url_for("console.connections_page", notice="revoked"))


# CMS sources.


@bp.get("/connections/<cid>/sources")
@endpoint(page("Console: a connection's CMS sources"))
@signed_in
def sources_page(cid: str) -> str:
    connection = _connection(cid)
    rows = service.source_rows(get_session(), cid)
    return _page("sources.html", row=service.row(connection, settings(), service.utcnow()),
                 sources=rows, providers=PROVIDERS)  # fmt: skip


@bp.get("/connections/<cid>/sources/new")
@endpoint(page("Console: pick a CMS provider and its datastore"))
@signed_in
def new_source(cid: str) -> str:
    connection = _live(cid)
    provider = request.args.get("provider")
    if provider not in PROVIDERS:
        provider = None
    datastores = service.choices(runtime(), cid, "datastores") if provider else None
    return _page(
        "source_new.html", row=service.row(connection, settings(), service.utcnow()),
        providers=PROVIDERS, setups=SETUPS, provider=provider, datastores=datastores,
    )  # fmt: skip


@bp.post("/connections/<cid>/sources")
@endpoint(page("Console: create a CMS source (URL and secret shown once, with its steps)"))
@signed_in
def create_source(cid: str) -> str:
    connection = _live(cid)
    form = request.form
    credentials = {key: form.get(f"credential_{key}", "").strip() for key in ("token", "base_url")}
    body: dict[str, Any] = {
        key: form.get(key, "").strip() for key in ("provider", "datastore_id", "secret")
    }
    body.update(_json_options(form.get("config", ""), form.get("mapping", "")))
    body["credentials"] = {key: value for key, value in credentials.items() if value}
    data = CreateSourceIn().load({key: value for key, value in body.items() if value})  # as the API
    provider_key = data["provider"]
    if SETUPS[provider_key].cms_made_key and "secret" not in data:
        raise InvalidInput(f"{PROVIDERS[provider_key].label} makes the signing secret: paste it",
                           fields=["secret"])  # fmt: skip
    session = get_session()
    created = sources.create(
        session, runtime().box, connection.id, provider=provider_key,
        datastore_id=data["datastore_id"], secret=data.get("secret"),
        config=source_options(data), credentials=data.get("credentials") or {},
        allow_private_targets=runtime().settings.allow_private_targets,
    )  # fmt: skip
    session.commit()
    return _page(
        "source_created.html", row=service.row(connection, settings(), service.utcnow()),
        source=created.source, provider=PROVIDERS[provider_key], setup=SETUPS[provider_key],
        inbound_url=_base_url() + sources.inbound_path(created.path_token), secret=created.secret,
    )  # fmt: skip


def _json_options(config: str, mapping: str) -> dict[str, Any]:
    """The form's `config` and `mapping` text areas as the API's JSON fields."""
    options: dict[str, Any] = {}
    for name, text in (("config", config), ("mapping", mapping)):
        if text.strip():
            try:
                options[name] = jsontext.loads(text)
            except jsontext.JsonTooDeep as exc:
                raise InvalidInput(f"{name}: {exc.message}", fields=[name]) from exc
            except jsontext.NotUnicode as exc:
                raise jsontext.NotUnicode(f"{name}.{exc.fields[0]}") from exc
            except ValueError as exc:
                raise InvalidInput(f"{name} is not valid JSON", fields=[name]) from exc
    return options


@bp.get("/connections/<cid>/sources/<sid>")
@endpoint(page("Console: a source's events, each document's fate, replay, rotation, delete"))
@signed_in
def source_page(cid: str, sid: str) -> str:
    connection = _connection(cid)
    source = sources.find_owned(get_session(), cid, sid)
    status = request.args.get("status") or None
    if status is not None and status not in inbound_events.STATUSES:
        raise InvalidInput("status is accepted, rejected or unmappable", fields=["status"])
    before = _events_before(request.args.get("before") or None)
    events = service.events_page(get_session(), runtime(), source, status=status, before=before)
    template = "_events.html" if request.args.get("partial") == "events" else "source.html"
    return _page(
        template, row=service.row(connection, settings(), service.utcnow()), page=events,
        provider=PROVIDERS[source.provider], setup=SETUPS[source.provider],
        inbound_url=_base_url() + events.inbound_path, statuses=inbound_events.STATUSES,
    )  # fmt: skip


def _events_before(text: str | None) -> int | None:
    """The page link's `before` event id, bounded as the API's (422 naming it when out of
    range: never an overflow in the query)."""
    if text is None:
        return None
    try:
        before: int = EVENTS_BEFORE.deserialize(text)
    except ValidationError as exc:
        raise InvalidInput(f"before: {exc.messages[0]}", fields=["before"]) from exc
    return before


@bp.post("/connections/<cid>/sources/<sid>/replay")
@endpoint(page("Console: send a source's dead documents again"))
@signed_in
def replay_source(cid: str, sid: str) -> ResponseReturnValue:
    _live(cid)
    session = get_session()
    source = sources.find_owned(session, cid, sid)
    count, claimed = sources.replay_dead(session, runtime(), source)
    if claimed:
        context.service(SyncTasks).schedule(source.connection_id, 0)
    return redirect(url_for("console.source_page", cid=cid, sid=sid,
                            notice="documents_replayed", n=count))  # fmt: skip


@bp.post("/connections/<cid>/sources/<sid>/rotate-secret")
@endpoint(page("Console: a new signing secret for a source (the old one works 24 h)"))
@signed_in
def rotate_source_secret(cid: str, sid: str) -> str:
    connection = _live(cid)
    session = get_session()
    source = sources.find_owned(session, cid, sid)
    chosen = request.form.get("secret", "").strip() or None
    secret = sources.rotate_secret(source, runtime().box, chosen)
    session.commit()
    return _page("secret_shown.html", row=service.row(connection, settings(), service.utcnow()),
                 title="New source secret", shown_label="Signing secret", secret=secret,
                 back=url_for("console.source_page", cid=cid, sid=sid), base_url=_base_url(),
                 explain="Paste it into the CMS's webhook settings. The old secret keeps "
                 "verifying for 24 hours, so nothing is dropped meanwhile.")  # fmt: skip


@bp.get("/connections/<cid>/sources/<sid>/delete")
@endpoint(page("Console: confirm deleting a source"))
@signed_in
def delete_source_confirm(cid: str, sid: str) -> str:
    _live(cid)
    source = sources.find_owned(get_session(), cid, sid)
    return _page(
        "confirm.html", title=f"Delete the {PROVIDERS[source.provider].label} source?",
        explain="Its inbound URL answers 410 from now on, and documents still waiting are not "
        "sent. Documents already in ZappWay stay there.",
        action=url_for("console.delete_source", cid=cid, sid=sid), button="Delete this source",
        back=url_for("console.source_page", cid=cid, sid=sid),
    )  # fmt: skip


@bp.post("/connections/<cid>/sources/<sid>/delete")
@endpoint(page("Console: delete a source"))
@signed_in
def delete_source(cid: str, sid: str) -> ResponseReturnValue:
    _live(cid)
    session = get_session()
    sources.delete(session, sources.find_owned(session, cid, sid))
    session.commit()
    return redirect(url_for("console.sources_page", cid=cid, notice="source_deleted"))


# Hooks.


@bp.get("/connections/<cid>/hooks")
@endpoint(page("Console: a connection's hooks and their state"))
@signed_in
def hooks_page(cid: str) -> str:
    connection = _connection(cid)
    agents = None if connection.is_revoked else service.choices(runtime(), cid, "agents")
    return _page("hooks.html", row=service.row(connection, settings(), service.utcnow()),
                 hooks=service.hook_rows(get_session(), cid), agents=agents)  # fmt: skip


@bp.post("/connections/<cid>/hooks")
@endpoint(page("Console: subscribe a hook (its secret shown once)"))
@signed_in
def create_hook(cid: str) -> str:
    connection = _live(cid)
    target_url = request.form.get("target_url", "").strip()
    agent_id = request.form.get("agent_id", "").strip()
    if not target_url.startswith(("http://", "https://")) or len(target_url) > 2000:
        raise InvalidInput("target_url must be an http(s) URL", fields=["target_url"])
    if not agent_id or len(agent_id) > 100:
        raise InvalidInput("Pick the agent whose new conversations it receives",
                           fields=["agent_id"])  # fmt: skip
    session = get_session()
    created = hooks.subscribe(session, runtime(), cid, target_url=target_url,
                              event_type="new_conversation", agent_id=agent_id)  # fmt: skip
    session.commit()
    context.service(HookTasks).poll_soon(created)
    return _page("secret_shown.html", row=service.row(connection, settings(), service.utcnow()),
                 title="Hook subscribed", shown_label="Hook signing secret",
                 secret=created.secret, base_url=_base_url(),
                 back=url_for("console.hook_page", cid=cid, hid=created.subscription.id),
                 explain="Deliveries to the target are signed with this secret (Standard "
                 "Webhooks headers): verify each one with it.")  # fmt: skip


@bp.get("/connections/<cid>/hooks/<hid>")
@endpoint(page("Console: a hook's recent deliveries with every attempt"))
@signed_in
def hook_page(cid: str, hid: str) -> str:
    connection = _connection(cid)
    subscription = hooks.find_owned(get_session(), cid, hid)
    return _page("hook.html", row=service.row(connection, settings(), service.utcnow()),
                 hook=service.hook_detail(get_session(), subscription))  # fmt: skip


@bp.post("/connections/<cid>/hooks/<hid>/replay")
@endpoint(page("Console: send a hook's events since a time again"))
@signed_in
def replay_hook(cid: str, hid: str) -> ResponseReturnValue:
    _live(cid)
    session = get_session()
    subscription = hooks.find_owned(session, cid, hid)
    since = _since(request.form.get("since", ""))
    hooks.reactivate(subscription)
    ids = hooks.replay(session, subscription, since)
    session.commit()
    context.service(HookTasks).deliver(ids)
    return redirect(url_for("console.hook_page", cid=cid, hid=hid, notice="events_replayed",
                            n=len(ids)))  # fmt: skip


def _since(text: str) -> datetime | None:
    """A `datetime-local` value (read as UTC), or None for every event."""
    if not text.strip():
        return None
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInput("since is a date and time (UTC)", fields=["since"]) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@bp.get("/connections/<cid>/hooks/<hid>/delete")
@endpoint(page("Console: confirm deleting a hook"))
@signed_in
def delete_hook_confirm(cid: str, hid: str) -> str:
    _live(cid)
    hook = hooks.find_owned(get_session(), cid, hid)
    return _page(
        "confirm.html", title="Delete this hook?",
        explain=f"Nothing more is delivered to {hook.target_url}. A platform that still "
        "expects it (a Zap that is on) stops receiving events.",
        action=url_for("console.delete_hook", cid=cid, hid=hid), button="Delete this hook",
        back=url_for("console.hook_page", cid=cid, hid=hid),
    )  # fmt: skip


@bp.post("/connections/<cid>/hooks/<hid>/delete")
@endpoint(page("Console: delete a hook"))
@signed_in
def delete_hook(cid: str, hid: str) -> ResponseReturnValue:
    _live(cid)
    session = get_session()
    hooks.unsubscribe(hooks.find_owned(session, cid, hid))
    session.commit()
    return redirect(url_for("console.hooks_page", cid=cid, notice="hook_deleted"))
