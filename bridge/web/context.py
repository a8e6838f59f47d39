"""Accessors for the per-app services the factory builds (kept in `app.extensions`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app

if TYPE_CHECKING:
    from huey import Huey

    from bridge.config import Settings
    from bridge.infra.crypto import SecretBox
    from bridge.upstream.client import UpstreamPool


def settings() -> Settings:
    return cast("Settings", current_app.extensions["settings"])


def secret_box() -> SecretBox:
    return cast("SecretBox", current_app.extensions["secret_box"])


def upstream_pool() -> UpstreamPool:
    return cast("UpstreamPool", current_app.extensions["upstream"])


def huey() -> Huey:
    return cast("Huey", current_app.extensions["huey"])
