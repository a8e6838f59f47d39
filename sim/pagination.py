"""Reading ``page``/``limit`` query parameters for documented list routes."""

from __future__ import annotations

from flask import request

from .envelope import bad_request

MAX_LIMIT = 100


def page_params(default_limit: int = 20) -> tuple[int, int]:
    """Return (page ≥ 1, limit clamped to 1..100).

    Raises:
        ApiError: 400 when either is not an integer.
    """
    try:
        page = int(request.args.get("page", "1"))
        limit = int(request.args.get("limit", str(default_limit)))
    except ValueError as exc:
        raise bad_request("page and limit must be integers.") from exc
    return max(1, page), min(MAX_LIMIT, max(1, limit))
