"""A bridge app in this process on an in-process simulator, for the micro-benchmarks that call
the WSGI app directly (`bench.ack_path`, `bench.activity`): no server, no sockets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from flask import Flask

import sim
from bridge import create_app
from sim.testing import SimAdmin

BENCH_SECRET = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105  # a throw-away app


def bridge_on_simulator(
    tmp: Path, database_url: str, **settings: Any
) -> tuple[Flask, dict[str, Any]]:
    """The app (on `database_url`, else a SQLite file in `tmp`) and the simulator's seeded org
    (its key, agents and datastores)."""
    transport = httpx.WSGITransport(app=sim.create_app({"profile": "documented", "seed": 1}))
    seeded = SimAdmin(httpx.Client(transport=transport, base_url="http://sim")).seed()
    app = create_app(
        {
            "secret_key": BENCH_SECRET,
            "var_dir": tmp,
            "upstream_base_url": "http://sim/api/v1",
            "database_url": database_url or f"sqlite:///{tmp}/bench.sqlite3",
            **settings,
        },
        upstream_transport=transport,
    )
    return app, seeded
