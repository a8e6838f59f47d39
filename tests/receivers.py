"""Real HTTP receivers on 127.0.0.1 for hook tests: record every request, answer from a script.

A script is a list of answers used in order, then `then` for every later request. An answer is
a status (`500`), a `(status, headers)` pair (`(302, {"Location": url})`), `HANG` (never
answer until the receiver closes), `DRIP` (200 at once, then the body 10 bytes every 0.3 s) or
a function called on the receiver's thread when the request arrives, which returns the answer
(to hold a request until the test says so, or to act while the sender waits).
Nothing here mocks bridge code: the bridge sends real HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = "hang"
DRIP = "drip"
Answer = int | tuple[int, dict[str, str]] | str | Callable[[], "Answer"]


class BackloggedServer(ThreadingHTTPServer):
    """A receiver with a real server's accept queue: socketserver's default of 5 drops the SYNs
    of a parallel burst, and each dropped one costs the sender a 1 s retransmit."""

    request_queue_size = 1024
    daemon_threads = True


@dataclass(frozen=True)
class Received:
    """One request as it arrived: raw body bytes, lower-cased headers, arrival time."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


class Receiver:
    """A threaded HTTP server that records requests and answers them from a script."""

    def __init__(self, script: Sequence[Answer] = (), then: Answer = 200) -> None:
        self._script = list(script)
        self._then = then
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._closing = threading.Event()
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            do_GET = do_POST

            def log_message(self, *_args: Any) -> None:
                return

        self._server = BackloggedServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.daemon = True

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next_answer(self) -> Answer:
        with self._lock:
            return self._script.pop(0) if self._script else self._then

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        record = Received(
            method=handler.command,
            path=handler.path,
            headers={name.lower(): value for name, value in handler.headers.items()},
            body=body,
            at=time.monotonic(),
        )
        with self._arrived:
            self.received.append(record)
            self._arrived.notify_all()
        answer = self._next_answer()
        while callable(answer):
            answer = answer()
        if answer == HANG:
            self._closing.wait(30)
            return
        if answer == DRIP:
            handler.send_response(200)
            handler.send_header("Content-Length", "100")
            handler.end_headers()
            for _ in range(10):
                if self._closing.wait(0.3):
                    return
                handler.wfile.write(b"x" * 10)
                handler.wfile.flush()
            return
        status, headers = answer if isinstance(answer, tuple) else (int(answer), {})
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least `count` requests arrived (or the timeout); return them all."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.wait(left)
            return list(self.received)

    def ids(self) -> list[str]:
        """The `webhook-id` of every request received, in arrival order."""
        with self._lock:
            return [r.headers.get("webhook-id", "") for r in self.received]


@contextmanager
def receiver(script: Sequence[Answer] = (), then: Answer = 200) -> Iterator[Receiver]:
    """Run a `Receiver` for the duration of a `with` block."""
    running = Receiver(script, then).start()
    try:
        yield running
    finally:
        running.close()
