"""An instant ZappWay upstream for `bench/overhead.py`: answers `query_agent` at once.

A single-process asyncio HTTP/1.1 server (keep-alive, Content-Length bodies) that knows three
routes of the documented profile, enough for the bridge and the pass-through:

- `GET /api/v1/me`: the organization of the one key it accepts (`--key`);
- `POST /api/v1/agents/<id>/query`: a fixed answer in the shape the simulator gives;
- `GET /healthz`: readiness.

It checks the bearer key and nothing else, costs ~0.1 ms of CPU per call, and so stands for an
upstream whose own latency is zero: what the bridge and the pass-through add is all there is.
The simulator is not used here: as a threaded werkzeug server it costs more per call than the
pass-through itself and would hide the difference being measured.

    .venv/bin/python -m bench.stub --port 8199 --key zw_stub_key
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re

AGENT_QUERY = re.compile(rb"^/api/v1/agents/[A-Za-z0-9_-]+/query$")
ME = {"data": {"id": "c0000000stuborg0000000000", "name": "Stub org", "currentPlan": "level_4",
               "isPremium": True, "nbAgents": 1, "nbDatastores": 0}}  # fmt: skip
ANSWER = {
    "data": {
        "answer": "The stub answers at once.",
        "sources": [],
        "conversationId": "c0000000stubconv000000000",
        "visitorId": "c0000000stubvisitor000000",
        "messageId": "c0000000stubmessage000000",
        "usage": {"promptTokens": 200, "completionTokens": 6, "totalTokens": 206, "cost": 0.001},
        "approvals": [],
        "metadata": {},
    }
}


def response(status: int, payload: object, close: bool) -> bytes:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}.get(status, "Error")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode() + body


class Stub:
    def __init__(self, key: str) -> None:
        self.auth = f"Bearer {key}".encode()
        self.calls = 0
        self.me = {status: response(200, ME, status) for status in (False, True)}
        self.answer = {status: response(200, ANSWER, status) for status in (False, True)}

    def route(self, method: bytes, path: bytes, headers: dict[bytes, bytes], close: bool) -> bytes:
        if path == b"/healthz":
            return response(200, {"calls": self.calls}, close)
        if headers.get(b"authorization") != self.auth:
            return response(401, {"error": {"code": "UNAUTHORIZED"}}, close)
        self.calls += 1
        if method == b"GET" and path == b"/api/v1/me":
            return self.me[close]
        if method == b"POST" and AGENT_QUERY.match(path):
            return self.answer[close]
        return response(404, {"error": {"code": "NOT_FOUND"}}, close)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.split(b"\r\n")
                method, path, version = lines[0].split(b" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(b":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get(b"content-length", b"0"))
                if length:
                    await reader.readexactly(length)
                connection = headers.get(b"connection", b"").lower()
                close = connection == b"close" or (
                    version == b"HTTP/1.0" and connection != b"keep-alive"
                )
                writer.write(self.route(method, path.split(b"?", 1)[0], headers, close))
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


async def main(host: str, port: int, key: str) -> None:
    stub = Stub(key)
    server = await asyncio.start_server(stub.serve, host, port, backlog=4096)
    print(f"stub listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True, help="the one API key it accepts")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.host, args.port, args.key))
