"""The soak's verdict (`bench/soak_checks.py`): each rule that turns a soak red, on small
hand-built inputs. The soak itself runs in `make soak` / `make soak-short`, never here."""

from __future__ import annotations

from typing import Any

from bench import soak_checks as checks
from bench.soak_checks import Answer, Expected, HookArrival, SentEvent

DELETE = checks.DELETE_WINS


def text(key: str, version: int) -> str:
    return f"{checks.marker(key, version)} some filler after the marker"


def test_newest_version_wins_whatever_the_arrival_order():
    """Shuffled and repeated deliveries: the highest CMS order decides; a delete beats upserts."""
    sent = [
        SentEvent("a", "upsert", 3, 300),
        SentEvent("a", "upsert", 1, 100),
        SentEvent("a", "upsert", 3, 300),
        SentEvent("b", "upsert", 2, 200),
        SentEvent("b", "delete", 0, DELETE),
        SentEvent("b", "upsert", 1, 100),
        SentEvent("c", "delete", 0, 250),
        SentEvent("c", "upsert", 4, 400),  # published again after its delete
    ]
    assert checks.expected_documents(sent) == {
        "a": Expected(True, 3),
        "b": Expected(False, 0),
        "c": Expected(True, 4),
    }


def test_a_delete_wins_a_tie():
    sent = [SentEvent("a", "upsert", 2, 200), SentEvent("a", "delete", 0, 200)]
    assert checks.expected_documents(sent)["a"].present is False


def test_documents_lost_stale_deleted_and_duplicated_are_each_named():
    expected = {
        "ok": Expected(True, 2),
        "lost": Expected(True, 1),
        "stale": Expected(True, 3),
        "gone": Expected(False, 0),
        "zombie": Expected(False, 0),
        "twice": Expected(True, 1),
    }
    found = [
        text("ok", 2),
        text("stale", 2),
        text("zombie", 1),
        text("twice", 1),
        text("twice", 1),
        "a document nobody sent",
    ]
    check = checks.check_documents(expected, found)
    assert check.lost == ["lost"]
    assert check.stale == ["stale"]
    assert check.deleted_but_present == ["zombie"]
    assert check.duplicates == ["twice"]
    assert (check.expected_present, check.expected_absent, check.unknown) == (4, 2, 1)
    assert not check.ok


def test_documents_all_in_place_pass_and_ignored_ones_do_not_count():
    expected = {"a": Expected(True, 2), "b": Expected(False, 0), "revoked": Expected(True, 1)}
    check = checks.check_documents(expected, [text("a", 2)], ignore=["revoked"])
    assert check.ok
    assert check.found == 1


def test_a_newer_version_upstream_than_expected_is_not_stale():
    """The CMS's newest version may have been sent by a retry we did not see acknowledged."""
    check = checks.check_documents({"a": Expected(True, 2)}, [text("a", 3)])
    assert check.ok


def test_resends_count_repeats_after_a_2xx_only_once_acknowledged():
    upserts = [
        (503, [text("a", 1), text("b", 1)]),  # failed: a retry is not a duplicate
        (200, [text("a", 1), text("b", 1)]),
        (0, [text("a", 1)]),  # sent again after ZappWay had answered 2xx
        (200, [text("c", 1), "no marker"]),
    ]
    assert checks.upstream_resends(upserts) == {
        "versions_sent": 3,
        "sends": 6,
        "versions_sent_more_than_once": 2,
        "resent_after_2xx": 1,
    }


def test_hooks_missing_and_unstable_ids_fail_repeats_do_not():
    expected = [("h1", "c1"), ("h2", "c1"), ("h1", "c2")]
    arrivals = [
        HookArrival("h1", "msg_1_h1", "c1"),
        HookArrival("h1", "msg_1_h1", "c1"),  # at-least-once: a repeat is fine
        HookArrival("h2", "msg_1_h2", "c1"),
        HookArrival("h2", "msg_other", "c1"),  # the same event under a second id
    ]
    check = checks.check_hooks(expected, arrivals)
    assert (check.expected, check.received, check.repeats) == (3, 2, 2)
    assert check.missing == ["h1/c2"]
    assert check.unstable_ids == ["h2/c1"]
    assert not check.ok


def test_hooks_all_delivered_once_pass():
    check = checks.check_hooks([("h", "c")], [HookArrival("h", "msg_c_h", "c")])
    assert check.ok


def test_a_replay_must_repeat_a_successful_answer_exactly():
    ok = Answer(200, b'{"answer":"9 to 5"}')
    assert not checks.replay_mismatch(ok, Answer(200, b'{"answer":"9 to 5"}', replayed=True))
    assert checks.replay_mismatch(ok, Answer(200, b'{"answer":"8 to 4"}'))
    assert checks.replay_mismatch(ok, Answer(502, b"{}"))
    assert checks.replay_mismatch(ok, Answer("ReadTimeout"))


def test_a_replay_after_a_failed_first_answer_may_differ():
    assert not checks.replay_mismatch(Answer(502, b"{}"), Answer(200, b"{}"))
    assert not checks.replay_mismatch(Answer("RemoteProtocolError"), Answer(200, b"{}"))


def test_only_5xx_that_do_not_map_upstream_faults_count():
    statuses = [200, 202, 502, 503, 504, 500, 500, 501, "ReadTimeout", 429]
    assert checks.unexpected_5xx(statuses) == {500: 2, 501: 1}


def test_max_in_window_counts_the_busiest_60_seconds():
    assert checks.max_in_window([0, 10, 59.9, 60, 61, 200]) == 4
    assert checks.max_in_window([]) == 0
    assert checks.busiest_window([5, 100, 110, 150, 170]) == (3, 100)


def report(**changes: Any) -> dict[str, Any]:
    """A passing report; `changes` replace whole top-level entries."""
    base: dict[str, Any] = {
        "profile": "short",
        "started": "2026-12-05T07:00:00+00:00",
        "commit": "abc1234",
        "command": "python -m bench.soak --profile short",
        "setup": "2 web + 2 workers",
        "wall_s": 200.0,
        "events": {"acknowledged": 10, "attempts": 12, "unacknowledged": 0, "statuses": {}},
        "documents": {
            "expected_present": 8,
            "expected_absent": 2,
            "found": 8,
            "lost": [],
            "stale": [],
            "deleted_but_present": [],
            "duplicates": [],
            "unknown": 0,
        },
        "resends": {"versions_sent": 9, "sends": 11, "resent_after_2xx": 0},
        "hooks": {"expected": 4, "received": 4, "missing": [], "unstable_ids": [], "repeats": 0},
        "actions": {"answered": 5, "replayed": 2, "mismatched_replays": 0},
        "rate": {"sync (free)": {"max_calls_60s": 60, "plan_per_min": 60}},
        "bridge_5xx": {},
        "faults": [{"name": "kill_worker", "at_s": 30.0, "recovered_s": 12.5}],
        "windows": [{"name": "reset, then delete", "outcome": "absent (ok)"}],
    }
    base.update(changes)
    return base


def test_a_clean_report_passes_and_renders_pass():
    clean = report()
    assert checks.failures(clean) == []
    clean["failures"] = []
    markdown = checks.render_markdown(clean)
    assert markdown.startswith("## short profile: PASS")
    assert "| kill_worker | 30.0 | 12.5 |" in markdown
    assert "No failures." in markdown


def test_each_broken_promise_is_a_failure():
    documents = dict(report()["documents"], deleted_but_present=["win-reset-0"])
    cases = {
        "documents deleted_but_present: 1 (win-reset-0)": report(documents=documents),
        "hook deliveries missing": report(
            hooks=dict(report()["hooks"], missing=["h1/c2"], received=3)
        ),
        "webhook-ids": report(hooks=dict(report()["hooks"], unstable_ids=["h/c"])),
        "replays that differ": report(actions=dict(report()["actions"], mismatched_replays=1)),
        "61 calls in 60 s, plan 60": report(
            rate={"sync (free)": {"max_calls_60s": 61, "plan_per_min": 60}}
        ),
        "bridge 5xx other than 502/503/504": report(bridge_5xx={500: 1}),
        "no recovery seen after kill_worker": report(
            faults=[{"name": "kill_worker", "at_s": 30.0, "recovered_s": None}]
        ),
        "did not finish": report(incomplete="3 CMS events never acknowledged"),
        "msg_1_hold delivered again as []": report(
            windows=[
                {
                    "name": "kill mid hook",
                    "outcome": "msg_1_hold delivered again as []",
                    "failed": True,
                }
            ]
        ),
    }
    for expected, broken in cases.items():
        found = checks.failures(broken)
        assert len(found) == 1 and expected in found[0], (expected, found)


def test_a_failing_report_renders_fail_with_its_reasons():
    broken = report(bridge_5xx={500: 2})
    broken["failures"] = checks.failures(broken)
    markdown = checks.render_markdown(broken)
    assert markdown.startswith("## short profile: FAIL")
    assert "- bridge 5xx other than 502/503/504: {500: 2}" in markdown
