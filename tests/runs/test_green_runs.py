"""A run as a greenlet under gevent (`bridge.runs.runner._Greenlet`), in a monkey-patched
process of its own, as under gunicorn's gevent workers: the run is switched into directly and
resumes its request when it ends, and once the request stops waiting (the deadline, or anything
that interrupts it) the run carries on in the hub's care without disturbing anyone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import json
    from concurrent.futures import TimeoutError as FutureTimeout

    import gevent

    from bridge.runs.runner import _Greenlet

    seen = {}

    def slow(seconds, value):
        gevent.sleep(seconds)
        return value

    def fails():
        gevent.sleep(0.01)
        raise ValueError("refused")

    seen["waited"] = _Greenlet(slow, 0.02, "answer").result(timeout=5)
    seen["at_once"] = _Greenlet(lambda: "now").result(timeout=5)
    try:
        _Greenlet(fails).result(timeout=5)
    except ValueError as exc:
        seen["raised"] = str(exc)

    detached = _Greenlet(slow, 0.2, "later")
    try:
        detached.result(timeout=0.02)
    except FutureTimeout:
        seen["deadline_done"] = detached.done()
    gevent.sleep(0.3)  # the request has moved on; the run ends in the hub's care
    seen["detached"] = detached.result()

    failing = _Greenlet(fails)
    try:
        failing.result(timeout=0.001)
    except FutureTimeout:
        pass
    try:
        failing.result(timeout=5)  # a second wait, while it still runs
    except ValueError as exc:
        seen["second_wait"] = str(exc)

    interrupted = _Greenlet(slow, 0.05, "kept")
    try:
        with gevent.Timeout(0.01):
            interrupted.result(timeout=5)
    except gevent.Timeout:
        seen["interrupted"] = True
    gevent.sleep(0.1)  # its end must not switch into this greenlet, now sleeping elsewhere
    seen["interrupted_run"] = interrupted.result()

    def request(index):
        run = _Greenlet(slow, 0.001 * (index % 7), index)
        try:
            return run.result(timeout=0.004)
        except FutureTimeout:
            return -1

    requests = [gevent.spawn(request, index) for index in range(200)]
    gevent.joinall(requests, raise_error=True)
    answers = [g.get() for g in requests]
    seen["answered"] = sum(1 for a in answers if a >= 0)
    seen["right_answers"] = all(a in (-1, i) for i, a in enumerate(answers))
    gevent.sleep(0.05)
    print(json.dumps(seen))
    """
)


def test_a_green_run_answers_detaches_and_never_disturbs_its_request():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Error" not in done.stderr, done.stderr[-3000:]  # gevent prints hub errors there
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["waited"] == "answer"
    assert seen["at_once"] == "now"
    assert seen["raised"] == "refused"
    assert seen["deadline_done"] is False
    assert seen["detached"] == "later"
    assert seen["second_wait"] == "refused"
    assert seen["interrupted"] is True
    assert seen["interrupted_run"] == "kept"
    assert 0 < seen["answered"] < 200  # some within the 4 ms deadline, some past it
    assert seen["right_answers"] is True
