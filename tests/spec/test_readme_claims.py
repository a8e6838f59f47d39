"""What the README promises is what the server does (issue 12 items 14 and 15): every operation
of /openapi.json is in the README, the callback body is described as the wrapper it is, the hook
retry schedule is stated from the settings, and the advice the manifest's retry statuses need."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bridge.config import Settings
from bridge.infra.models import Job
from bridge.registry import ACTIONS, TRIGGERS
from bridge.runs import callbacks
from bridge.spec.manifest import build_manifest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
PROSE = " ".join(README.split())  # sentences wrap across lines
PARAMETER = re.compile(r"<[^<>]+>|\{[^{}]+\}")
ACTION_KEYS = {action.key for action in ACTIONS}


def _mentioned(method: str, path: str) -> bool:
    generic = re.sub(r"/v1/actions/[a-z_]+$", "/v1/actions/<>", path)
    documented = PARAMETER.sub("<>", README)
    return any(f"{method} {PARAMETER.sub('<>', p)}" in documented for p in (path, generic))


def test_every_openapi_operation_is_in_the_readme(client):
    """Each operation /openapi.json documents (the admin ones, rotate-signing-secret) is in the
    README with its method, so neither document has routes the other lacks."""
    spec = client.get("/openapi.json").get_json()
    missing = [
        f"{method.upper()} {path}"
        for path, methods in spec["paths"].items()
        for method in methods
        if not _mentioned(method.upper(), path)
    ]
    assert missing == []


def test_readme_describes_the_callback_body_as_the_job_wrapper():
    """The README names exactly the keys a succeeded job's callback carries."""
    job = Job(
        id="job_1", action="query_agent", state="succeeded", input_json="{}",
        result_json=json.dumps({"answer": "hi"}), callback_url="https://example.com/cb",
        callback_state="pending", callback_attempts=0,
    )  # fmt: skip
    payload = callbacks._payload(job)
    assert f"`{{{', '.join(payload)}}}`" in PROSE
    assert payload["result"] == {"answer": "hi"}
    assert "a job wrapper, not the bare result" in PROSE


def test_readme_states_the_hook_retry_schedule_unambiguously():
    """The README's hook schedule is the configured one: the first attempt at once, then each
    retry's wait after the previous failure, and the number of attempts."""
    schedule = Settings().hook_retry_schedule
    assert schedule[0] == 0
    waits = ", ".join(_duration(s) for s in schedule[1:-1]) + f" and {_duration(schedule[-1])}"
    expected = (
        f"Each event is attempted up to {len(schedule)} times: the first attempt at once, "
        f"then retries {waits} after the previous failed attempt"
    )
    assert expected in PROSE
    assert re.search(r"(?<![\d.])0 s\b", PROSE) is None  # "retried at 0 s" said nothing


def test_readme_advises_an_idempotency_key_where_the_manifest_invites_retries():
    """504 is retryable in the manifest, so the README tells query_agent callers to send an
    Idempotency-Key, and warns about the New Conversation -> Query Agent loop."""
    manifest = build_manifest(ACTIONS, TRIGGERS)
    assert 504 in manifest["errors"]["retry_statuses"]
    assert "give every `query_agent` call an `Idempotency-Key`" in PROSE
    assert '"New Conversation -> Query Agent" automation' in PROSE
    assert "leaves `conversation_id` empty" in PROSE


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
