"""Subprocess body for the two-process budget test: drain one connection until a stop time.

It does what the `sync_connection` task does, in a loop: `syncer.sync`, then sleep for as long
as the answer says (the key's budget, a Retry-After), and again; it prints how many documents
it delivered. Usage: python -m tests.sync_worker '<json settings>' CONNECTION_ID START_AT STOP_AT
"""

from __future__ import annotations

import json
import sys
import time

from bridge import create_app
from bridge.sync import drain as syncer
from tests.conftest import runtime_of


def main() -> None:
    raw, connection_id, start_at, stop_at = sys.argv[1:5]
    app = create_app(json.loads(raw))
    runtime = runtime_of(app)
    delivered = runs = 0
    time.sleep(max(0.0, float(start_at) - time.time()))
    while time.time() < float(stop_at):
        outcome = syncer.sync(runtime, connection_id)
        delivered += outcome.delivered
        runs += 1
        if outcome.come_back_in is None:
            break
        time.sleep(max(0.0, min(outcome.come_back_in, float(stop_at) - time.time())))
    runtime_of(app).upstream.close()
    print(json.dumps({"delivered": delivered, "runs": runs}))


if __name__ == "__main__":
    main()
