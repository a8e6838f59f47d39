"""The soak's verdict, as pure functions over what was sent and what was found (no I/O).

`bench/soak.py` records what it sent (CMS events, conversations, actions) and collects what
arrived (the simulator's documents and request log, the hook receivers' requests); these
functions decide what was lost, stale, duplicated or crossed, and render the report. They are
kept apart from the run so that `tests/bench/test_soak_render.py` can check every rule that
turns a soak red without starting a single process.

The promises checked (issue 16, "Done when"):
- every CMS document is in ZappWay at the newest version the CMS sent, deleted ones absent,
  never twice;
- every hook event reached every live subscriber at least once, with one stable `webhook-id`;
- an `Idempotency-Key` replay of a successful action answers the same status and body;
- no key made more calls in any 60 s than its plan allows;
- the bridge answered no 5xx except the 502/503/504 that map upstream faults.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MARKER = re.compile(r"SOAKDOC (\S+) V(\d+)")
UPSTREAM_FAULT_STATUSES = frozenset({502, 503, 504})
DELETE_WINS = float("inf")  # a delete versioned by its receive time beats every past upsert


def marker(doc_key: str, version: int) -> str:
    """The text every document version carries, so the simulator's copy names its origin."""
    return f"SOAKDOC {doc_key} V{version}"


def parse_marker(text: str) -> tuple[str, int] | None:
    found = MARKER.search(text or "")
    return (found.group(1), int(found.group(2))) if found else None


@dataclass(frozen=True)
class SentEvent:
    """One CMS event the bridge acknowledged (2xx): its document, operation and CMS version.

    `order` is what the bridge orders versions by (the CMS's modification time, or for a delete
    the time the bridge received it: `DELETE_WINS` stands for "after every upsert sent")."""

    doc_key: str
    op: str  # "upsert" | "delete"
    version: int  # the version number in the marker (0 for a delete)
    order: float


@dataclass(frozen=True)
class Expected:
    present: bool
    version: int


def expected_documents(sent: Iterable[SentEvent]) -> dict[str, Expected]:
    """Each document's final state: the event with the highest order wins (arrival order,
    repeats and shuffles do not matter); on a tie a delete wins."""
    best: dict[str, SentEvent] = {}
    for event in sent:
        current = best.get(event.doc_key)
        rank = (event.order, event.op == "delete")
        if current is None or rank > (current.order, current.op == "delete"):
            best[event.doc_key] = event
    return {key: Expected(e.op == "upsert", e.version) for key, e in best.items()}


@dataclass
class DocumentCheck:
    expected_present: int = 0
    expected_absent: int = 0
    found: int = 0
    lost: list[str] = field(default_factory=list)  # should be there, is not
    stale: list[str] = field(default_factory=list)  # there at an older version
    deleted_but_present: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # more than one upstream copy
    unknown: int = 0  # upstream documents carrying no marker the soak sent

    @property
    def ok(self) -> bool:
        return not (self.lost or self.stale or self.deleted_but_present or self.duplicates)


def check_documents(
    expected: Mapping[str, Expected], found_texts: Iterable[str], ignore: Iterable[str] = ()
) -> DocumentCheck:
    """Compare the simulator's documents (their texts) with the expected final states.
    `ignore` names documents whose fate is not promised (a revoked key's, say)."""
    skip = set(ignore)
    versions: dict[str, list[int]] = defaultdict(list)
    check = DocumentCheck()
    for text in found_texts:
        parsed = parse_marker(text)
        if parsed is None:
            check.unknown += 1
            continue
        versions[parsed[0]].append(parsed[1])
        check.found += 1
    for key, want in sorted(expected.items()):
        if key in skip:
            continue
        have = versions.get(key, [])
        if len(have) > 1:
            check.duplicates.append(key)
        if want.present:
            check.expected_present += 1
            if not have:
                check.lost.append(key)
            elif max(have) < want.version:
                check.stale.append(key)
        else:
            check.expected_absent += 1
            if have:
                check.deleted_but_present.append(key)
    check.unknown += sum(len(v) for k, v in versions.items() if k not in expected)
    return check


def upstream_resends(upserts: Iterable[tuple[int, Sequence[str]]]) -> dict[str, int]:
    """From the upsert calls in log order (status, marker texts of the batch): how many document
    versions were sent more than once, and how many sends repeated one ZappWay had already
    answered 2xx to (a lost answer, a killed worker: allowed by at-least-once, but a cost)."""
    sent: Counter[tuple[str, int]] = Counter()
    acknowledged: set[tuple[str, int]] = set()
    after_success = 0
    for status, texts in upserts:
        for text in texts:
            parsed = parse_marker(text)
            if parsed is None:
                continue
            if parsed in acknowledged:
                after_success += 1
            sent[parsed] += 1
            if 200 <= status < 300:
                acknowledged.add(parsed)
    return {
        "versions_sent": len(sent),
        "sends": sum(sent.values()),
        "versions_sent_more_than_once": sum(1 for n in sent.values() if n > 1),
        "resent_after_2xx": after_success,
    }


@dataclass(frozen=True)
class HookArrival:
    """One POST a subscriber's receiver answered 2xx (unanswered ones do not count)."""

    hook: str
    webhook_id: str
    conversation_id: str


@dataclass
class HookCheck:
    expected: int = 0
    received: int = 0  # distinct (hook, conversation) pairs that arrived
    missing: list[str] = field(default_factory=list)
    unstable_ids: list[str] = field(default_factory=list)  # one event, several webhook-ids
    repeats: int = 0  # arrivals beyond the first (at-least-once allows them)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unstable_ids)


def check_hooks(expected: Iterable[tuple[str, str]], arrivals: Iterable[HookArrival]) -> HookCheck:
    """Every expected (hook, conversation) pair must arrive at least once, always under the
    same `webhook-id`."""
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    counts: Counter[tuple[str, str]] = Counter()
    for arrival in arrivals:
        pair = (arrival.hook, arrival.conversation_id)
        ids[pair].add(arrival.webhook_id)
        counts[pair] += 1
    check = HookCheck()
    for pair in sorted(set(expected)):
        check.expected += 1
        if pair in ids:
            check.received += 1
        else:
            check.missing.append(f"{pair[0]}/{pair[1]}")
    check.unstable_ids = sorted(f"{h}/{c}" for (h, c), seen in ids.items() if len(seen) > 1)
    check.repeats = sum(n - 1 for n in counts.values())
    return check


@dataclass(frozen=True)
class Answer:
    status: int | str  # an int, or the transport error's name
    body: bytes = b""
    replayed: bool = False  # Idempotent-Replayed: true


def replay_mismatch(first: Answer, replay: Answer) -> bool:
    """A replay must repeat a successful first answer exactly. A first answer that failed or
    never arrived may be retried for real, so its replay may differ."""
    if not isinstance(first.status, int) or not 200 <= first.status < 300:
        return False
    return (replay.status, replay.body) != (first.status, first.body)


def unexpected_5xx(statuses: Iterable[int | str]) -> Counter[int]:
    """The bridge's own 5xx: everything from 500 up except what maps an upstream fault."""
    return Counter(
        s for s in statuses if isinstance(s, int) and s >= 500 and s not in UPSTREAM_FAULT_STATUSES
    )


def max_in_window(times: Sequence[float], window: float = 60.0) -> int:
    """The most events in any `window`-second interval (closed on the left)."""
    return busiest_window(times, window)[0]


def busiest_window(times: Sequence[float], window: float = 60.0) -> tuple[int, float]:
    """The most events in any `window`-second interval, and when the first such one starts."""
    ordered, best, start, low = sorted(times), 0, 0.0, 0
    for high, at in enumerate(ordered):
        while at - ordered[low] >= window:
            low += 1
        if high - low + 1 > best:
            best, start = high - low + 1, ordered[low]
    return best, start


def failures(report: Mapping[str, Any]) -> list[str]:
    """Every broken promise in a report (empty: the soak passed)."""
    out: list[str] = []
    docs = report["documents"]
    for name in ("lost", "stale", "deleted_but_present", "duplicates"):
        if docs[name]:
            out.append(f"documents {name}: {len(docs[name])} ({', '.join(docs[name][:5])})")
    hooks = report["hooks"]
    if hooks["missing"]:
        out.append(f"hook deliveries missing: {len(hooks['missing'])} of {hooks['expected']}")
    if hooks["unstable_ids"]:
        out.append(f"hook events under several webhook-ids: {len(hooks['unstable_ids'])}")
    actions = report["actions"]
    if actions["mismatched_replays"]:
        out.append(f"idempotent replays that differ: {actions['mismatched_replays']}")
    for key, seen in report["rate"].items():
        if seen["max_calls_60s"] > seen["plan_per_min"]:
            out.append(
                f"key {key}: {seen['max_calls_60s']} calls in 60 s, plan {seen['plan_per_min']}"
            )
    if report["bridge_5xx"]:
        out.append(f"bridge 5xx other than 502/503/504: {report['bridge_5xx']}")
    for fault in report["faults"]:
        if fault.get("recovered_s") is None:
            out.append(f"no recovery seen after {fault['name']}")
    for window in report["windows"]:
        if window.get("failed"):
            out.append(f"window {window['name']}: {window['outcome']}")
    if report.get("incomplete"):
        out.append(f"the run did not finish: {report['incomplete']}")
    return out


def _spread(values: Mapping[str, Any] | None) -> str:
    if not values:
        return "-"
    return " / ".join(str(values.get(name, "-")) for name in ("p50", "p95", "max"))


def render_markdown(report: Mapping[str, Any]) -> str:
    """The SOAK.md section for one run."""
    docs, hooks, actions = report["documents"], report["hooks"], report["actions"]
    resends = report["resends"]
    verdict = "PASS" if not report["failures"] else "FAIL"
    lines = [
        f"## {report['profile']} profile: {verdict} ({report['started']}, commit"
        f" {report['commit']}, {report['wall_s']} s)",
        "",
        f"Command: `{report['command']}`. {report['setup']}",
        "",
        "| promise | figure |",
        "|---|---|",
        f"| CMS events sent (acknowledged / attempts) | {report['events']['acknowledged']} /"
        f" {report['events']['attempts']} ({report['events']['unacknowledged']} never"
        f" acknowledged; statuses {report['events']['statuses']}) |",
        f"| documents expected present / absent | {docs['expected_present']} /"
        f" {docs['expected_absent']} |",
        f"| found in the simulator | {docs['found']} |",
        f"| lost / stale / deleted but present | {len(docs['lost'])} / {len(docs['stale'])} /"
        f" {len(docs['deleted_but_present'])} |",
        f"| duplicates upstream (same document twice) | {len(docs['duplicates'])} |",
        f"| upsert sends: versions / sends / resent after a 2xx |"
        f" {resends['versions_sent']} / {resends['sends']} / {resends['resent_after_2xx']} |",
        f"| hook deliveries expected / received (by webhook-id) | {hooks['expected']} /"
        f" {hooks['received']} (repeats {hooks['repeats']}, unstable ids"
        f" {len(hooks['unstable_ids'])}) |",
        f"| hook delivery latency p50 / p95 / max (s) | {_spread(hooks.get('latency_s'))} |",
        f"| actions answered / replayed / mismatched replays | {actions['answered']} /"
        f" {actions['replayed']} / {actions['mismatched_replays']} (statuses"
        f" {actions.get('statuses', {})}; revoked key:"
        f" {actions.get('revoked_key_statuses', {})}) |",
        f"| the bridge's CMS documents at the end | {report.get('bridge_pending_documents', {})} |",
        f"| why the pending ones wait | {_pending_why(report.get('bridge_pending_why'))} |",
        f"| bridge 5xx other than 502/503/504 | {report['bridge_5xx'] or 0} |",
    ]
    for key, seen in report["rate"].items():
        lines.append(
            f"| most calls in any 60 s, {key} | {seen['max_calls_60s']} (plan"
            f" {seen['plan_per_min']}/min; from t={seen.get('busiest_window_from_s', '-')} s) |"
        )
    lines += ["", "| fault | at (s) | recovered after (s) | note |", "|---|---|---|---|"]
    for fault in report["faults"]:
        recovered = "-" if fault.get("recovered_s") is None else fault["recovered_s"]
        lines.append(
            f"| {fault['name']} | {fault['at_s']} | {recovered} | {fault.get('note', '')} |"
        )
    lines += ["", "Windows aimed at:", ""]
    lines += [f"- {w['name']}: {w['outcome']}" for w in report["windows"]]
    lines += ["", "Failures:" if report["failures"] else "No failures.", ""]
    lines += [f"- {failure}" for failure in report["failures"]]
    for key, story in (report.get("diagnosis") or {}).items():
        lines += ["", f"What happened to `{key}`:", ""]
        lines += [f"- {line}" for line in story]
    examples = report.get("bridge_5xx_examples") or []
    if examples:
        lines += ["", "The bridge's own 5xx (first ones):", ""]
        lines += [f"- `{example}`" for example in examples]
    return "\n".join(lines).rstrip() + "\n"


def _pending_why(why: Any) -> str:
    """The pending documents' largest groups: last error, attempts, seconds to their next try."""
    if not why or not why.get("by_error"):
        return "none pending"
    groups = [
        f"{g['count']} x {g['op']} after {g['attempts']} attempts, next in {g['next_in_s']} s"
        f" ({g['last_error']})"
        for g in why["by_error"][:4]
    ]
    return "; ".join(groups) + f"; markers due in {why.get('markers_due_in_s')} s"
