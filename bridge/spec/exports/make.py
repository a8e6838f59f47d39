"""Placeholder."""

from __future__ import annotations

from typing import Any

from bridge.spec.exports.common import Files


def render(manifest: dict[str, Any]) -> Files:
    return {}
