"""Subprocess body for the cross-process rate-limit test: fire N upstream calls, report counts.

Usage: python -m tests.burst '<json settings>' KEY PER_MINUTE COUNT START_AT
"""

from __future__ import annotations

import json
import sys
import time

from bridge.config import Settings
from bridge.upstream.client import UpstreamPool
from bridge.upstream.errors import UpstreamRateLimited


def main() -> None:
    raw, key, per_minute, count, start_at = sys.argv[1:6]
    pool = UpstreamPool(Settings.for_tests(json.loads(raw)))
    client = pool.client(key, int(per_minute))
    time.sleep(max(0.0, float(start_at) - time.time()))
    ok = limited = 0
    for _ in range(int(count)):
        try:
            client.whoami()
            ok += 1
        except UpstreamRateLimited:
            limited += 1
    pool.close()
    print(json.dumps({"ok": ok, "limited": limited}))


if __name__ == "__main__":
    main()
