"""Action runs: the action routes, long runs as jobs, Idempotency-Key replays."""
