"""The route table: which path forms exist in which profile, and each route's auth family.

Every route is registered once per path form; the request pipeline answers 404 when the
form does not exist in the active profile (e.g. ``/api/v1`` in legacy) and applies the
auth family: ``strict`` rejects bad keys, ``lazy`` lets the view serve public resources,
``handler`` leaves everything to the view (the ancestor's upsert/update handlers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask

DOCUMENTED = frozenset({"documented"})
LEGACY = frozenset({"legacy"})
BOTH = DOCUMENTED | LEGACY
ROUTES_EXTENSION = "zappway_sim_routes"

# (prefix, profiles) pairs for the common case: /api/v1 (documented) and /api (both).
STANDARD = (("/api/v1", DOCUMENTED), ("/api", BOTH))
DOCUMENTED_ONLY = (("/api/v1", DOCUMENTED), ("/api", DOCUMENTED))


@dataclass(frozen=True)
class RouteInfo:
    profiles: frozenset[str]
    family: str  # "strict" | "lazy" | "handler"


def add(
    app: Flask,
    name: str,
    path: str,
    view: Callable[..., Any],
    *,
    methods: list[str],
    family: str,
    forms: tuple[tuple[str, frozenset[str]], ...] = STANDARD,
) -> None:
    """Register ``view`` at ``prefix + path`` for every form, remembering profiles and family."""
    table: dict[str, RouteInfo] = app.extensions.setdefault(ROUTES_EXTENSION, {})
    for prefix, profiles in forms:
        endpoint = f"{name}@{prefix or '/'}"
        app.add_url_rule(prefix + path, endpoint, view, methods=methods)
        table[endpoint] = RouteInfo(profiles, family)


def info(app: Flask, endpoint: str | None) -> RouteInfo | None:
    table: dict[str, RouteInfo] = app.extensions.get(ROUTES_EXTENSION, {})
    return table.get(endpoint or "")
