"""Server-sent events in the ancestor's format.

Frames: ``event: answer`` with URL-encoded text chunks, one ``event: endpoint_response``
with URL-encoded JSON (no ``usage``), then ``data: [DONE]``. Errors after the headers are
``data: [ERROR]<CODE>`` with status 200, since the status line is already gone.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from flask import Response

# encodeURIComponent leaves these unescaped; quote() would escape some of them.
_JS_SAFE = "-_.!~*'()"


def encode(text: str) -> str:
    return quote(text, safe=_JS_SAFE)


def frame(data: str, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n"


def answer_frames(result: dict[str, Any], chunk_chars: int) -> list[str]:
    """Build every frame for a finished turn, the text split every ``chunk_chars``."""
    answer = result.get("answer")
    frames = []
    if isinstance(answer, str):
        size = max(1, chunk_chars)
        frames = [
            frame(encode(answer[i : i + size]), "answer") for i in range(0, len(answer), size)
        ]
    final = {
        k: result[k]
        for k in ("messageId", "answer", "sources", "conversationId", "visitorId", "metadata")
        if k in result
    }
    frames.append(frame(encode(json.dumps(final, separators=(",", ":"))), "endpoint_response"))
    frames.append(frame("[DONE]"))
    return frames


def broken_frames(frames: list[str], code: str) -> list[str]:
    """Cut the stream after half its answer frames and end it with an error frame."""
    return [*frames[: max(0, (len(frames) - 2) // 2)], frame(f"[ERROR]{code}")]


def error_frames(code: str) -> list[str]:
    return [frame(f"[ERROR]{code}")]


def sse_response(frames: list[str], delay_s: float, release: threading.Event) -> Response:
    """Stream pre-built frames, pausing ``delay_s`` between them (until released)."""

    def generate() -> Iterator[str]:
        for index, item in enumerate(frames):
            if index and delay_s:
                release.wait(delay_s)
            yield item

    response = Response(generate(), status=200, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache, no-transform"
    return response
