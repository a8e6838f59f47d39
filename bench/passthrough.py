"""The reference of `bench/overhead.py`: what a user could write in twenty lines instead.

`POST /v1/actions/query_agent` with a bearer token looked up in a dict, forwarded with httpx to
the upstream's query route, its answer reshaped like the bridge's. No storage, no encryption, no
rate budget, no idempotency, no revocation: only the HTTP round trip the bridge wraps. Served by
the same `gunicorn -c gunicorn.conf.py` (gevent x 2) as the bridge:

    PASSTHROUGH_UPSTREAM=http://127.0.0.1:8199/api/v1 PASSTHROUGH_TOKENS=tok=key \\
        .venv/bin/gunicorn -c gunicorn.conf.py -b 127.0.0.1:8300 'bench.passthrough:app'
"""

import os

import httpx
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

TOKENS = dict(item.split("=", 1) for item in os.environ["PASSTHROUGH_TOKENS"].split(","))
limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
http = httpx.Client(base_url=os.environ["PASSTHROUGH_UPSTREAM"], timeout=30, limits=limits)
app = Flask(__name__)


@app.post("/v1/actions/query_agent")
def query_agent() -> ResponseReturnValue:
    key = TOKENS.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
    if key is None:
        return jsonify(error={"code": "unknown_credentials", "message": "Unknown token"}), 401
    body = request.get_json()
    upstream = http.post(
        f"/agents/{body['agent_id']}/query",
        headers={"Authorization": f"Bearer {key}"},
        json={"query": body["query"], "streaming": False},
    )
    data = upstream.json().get("data", {})
    answer = {"answer": data.get("answer"), "conversation_id": data.get("conversationId"),
              "message_id": data.get("messageId"), "sources": data.get("sources", [])}  # fmt: skip
    return jsonify(answer), upstream.status_code
