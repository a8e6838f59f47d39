"""Helpers for tests, benchmarks and the demo: a threaded server and an admin client.

``serve_in_thread(app)`` serves a simulator on a free local port (real sockets, for
timeouts and dropped connections); ``SimAdmin`` wraps every ``/__admin`` endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from flask import Flask
from werkzeug.serving import make_server

from .state import EXTENSION, Store

POLL_S = 0.05  # how quickly shutdown() is noticed at the end of a test


@contextmanager
def serve_in_thread(app: Flask) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 with a free port in a daemon thread; yield its base URL.

    On exit, requests stuck in stalls or sleeps are released and the server shut down.
    """
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, args=(POLL_S,), name="zappway-sim", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        store = app.extensions.get(EXTENSION)
        if isinstance(store, Store):
            store.release_waiters()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class SimAdmin:
    """Typed wrapper of the admin API over a base URL or an existing ``httpx.Client``."""

    def __init__(self, target: str | httpx.Client) -> None:
        if isinstance(target, httpx.Client):
            self._client = target
        else:
            self._client = httpx.Client(base_url=target, timeout=10)

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        response = self._client.request(method, "/__admin" + path, json=body, params=params or None)
        response.raise_for_status()
        return response.json() if response.content else None

    def reset(self) -> None:
        self._call("POST", "/reset")

    def seed(self, plan: str | int = "free") -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/seed", {"plan": plan})
        return result

    def set_profile(self, profile: str) -> None:
        self._call("POST", "/profile", {"profile": profile})

    def create_org(
        self, name: str, plan: str | int = "free", org_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "plan": plan}
        if org_id is not None:
            body["id"] = org_id
        result: dict[str, Any] = self._call("POST", "/orgs", body)
        return result

    def create_key(self, org_id: str, key: str | None = None, rate_limit: int | None = None) -> str:
        body: dict[str, Any] = {"org_id": org_id, "key": key, "rate_limit": rate_limit}
        result: dict[str, Any] = self._call("POST", "/keys", body)
        return str(result["key"])

    def revoke_key(self, key: str) -> None:
        self._call("POST", f"/keys/{key}/revoke")

    def keys(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/keys")
        return result

    def create_agent(self, org_id: str, name: str, **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/agents", {"org_id": org_id, "name": name, **options}
        )
        return result

    def delete_agent(self, agent_id: str) -> None:
        self._call("DELETE", f"/agents/{agent_id}")

    def create_datastore(self, org_id: str, name: str, **options: Any) -> dict[str, Any]:
        body = {"org_id": org_id, "name": name, **options}
        result: dict[str, Any] = self._call("POST", "/datastores", body)
        return result

    def documents(self, datastore_id: str) -> list[dict[str, Any]]:
        """Every document of a datastore, with its text (in storage order)."""
        result: list[dict[str, Any]] = self._call("GET", f"/datastores/{datastore_id}/documents")
        return result

    def create_conversation(self, agent_id: str, **options: Any) -> dict[str, Any]:
        body = {"agent_id": agent_id, **options}
        result: dict[str, Any] = self._call("POST", "/conversations", body)
        return result

    def touch_conversation(self, conv_id: str, **options: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/conversations/{conv_id}/touch", options)
        return result

    def set_ai_enabled(self, conv_id: str, enabled: bool) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/conversations/{conv_id}/ai", {"enabled": enabled}
        )
        return result

    def settings(self, **changes: Any) -> dict[str, Any]:
        """Apply ``changes`` (if any) and return the current switches."""
        method = "POST" if changes else "GET"
        result: dict[str, Any] = self._call(method, "/settings", changes or None)
        return result

    def add_fault(self, kind: str, **rule: Any) -> str:
        result: dict[str, Any] = self._call("POST", "/faults", {"kind": kind, **rule})
        return str(result["id"])

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/faults")
        return result

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/requests", since=since)
        return result

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def advance_clock(self, seconds: float) -> float:
        return float(self._call("POST", "/clock", {"advance": seconds})["now"])

    def set_clock(self, epoch: float) -> float:
        return float(self._call("POST", "/clock", {"set": epoch})["now"])
