"""The upstream's wire (`bridge.upstream.wire`): httpcore pools whose idle-connection check never
yields to gevent, over plain TCP and TLS, sending what the httpx path sends."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridge.config import Settings
from bridge.upstream import wire
from bridge.upstream.client import UpstreamPool
from tests.conftest import TEST_SECRET


class Recorder(ThreadingHTTPServer):
    """An HTTP/1.1 keep-alive server that records each request and the connections it saw;
    `close_after_answer` makes it drop each connection once it has answered (while the client
    still holds it as idle)."""

    daemon_threads = True

    def __init__(self, close_after_answer: bool = False) -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections: list[tuple[str, int]] = []
        self.close_after_answer = close_after_answer
        self._closed = 0
        self._closing = threading.Condition()
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        self.connections.append(address)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self._closing:
            self._closed += 1
            self._closing.notify_all()

    def wait_closed(self, count: int, timeout: float = 5.0) -> None:
        """Until the server has closed `count` connections: the answer reaches the client
        before the server's close does, and a request sent in between meets a live socket."""
        with self._closing:
            assert self._closing.wait_for(lambda: self._closed >= count, timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.requests.append(
            {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
             "body": body}
        )  # fmt: skip
        answer = b'{"data":{"ok":true}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        self.wfile.flush()
        if self.server.close_after_answer:
            self.close_connection = True

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serving(server: Recorder) -> Iterator[Recorder]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_an_idle_socket_is_not_readable_until_data_or_eof_arrives() -> None:
    left, right = socket.socketpair()
    try:
        assert wire.readable_now(left) is False
        right.sendall(b"x")
        assert wire.readable_now(left) is True
        left.recv(1)
        assert wire.readable_now(left) is False
        right.close()  # the peer closed: EOF is readable
        assert wire.readable_now(left) is True
    finally:
        left.close()
    assert wire.readable_now(left) is True  # no descriptor: its next read ends the connection
    assert wire.readable_now(None) is True


def test_the_check_does_not_switch_greenlets_under_gevent() -> None:
    """The point of the wire: httpcore's own check runs gevent's hub for a zero-timeout poll
    (so this test fails with it), ours stays in the calling greenlet."""
    script = textwrap.dedent(
        """
        from gevent import monkey; monkey.patch_all()
        import socket, greenlet
        from httpcore._utils import is_socket_readable
        from bridge.upstream.wire import readable_now
        switches = []
        greenlet.settrace(lambda event, args: switches.append(event))
        left, right = socket.socketpair()
        def count(check):
            switches.clear()
            for _ in range(20):
                check(left)
            return len(switches)
        print(count(is_socket_readable), count(readable_now))
        """
    )
    done = subprocess.run(  # a process of its own: monkey-patching must not leak into pytest
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    httpcores, ours = map(int, done.stdout.split())
    assert httpcores > 0  # the check would catch a switch
    assert ours == 0


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    """What the readability check is for: the second request goes on a new connection and
    succeeds, instead of failing on the dead one."""
    with serving(Recorder(close_after_answer=True)) as server:
        pool = wire.new_pool(10, 10, ssl.create_default_context())
        try:
            for sent in range(1, 4):
                answer = pool.request("GET", f"{server.url}/ping")
                assert answer.status == 200
                server.wait_closed(sent)  # now idle in the pool, closed by the server
        finally:
            pool.close()
    assert len(server.connections) == 3


def test_an_open_connection_is_reused() -> None:
    with serving(Recorder()) as server:
        pool = wire.new_pool(10, 10, ssl.create_default_context())
        try:
            for _ in range(3):
                assert pool.request("GET", f"{server.url}/ping").status == 200
        finally:
            pool.close()
    assert len(server.connections) == 1


def test_the_pool_sends_what_the_httpx_path_sends(tmp_path: Path) -> None:
    """Same method, path, query, headers and body bytes from the production pools as from an
    httpx transport (the tests' path), non-ASCII JSON included."""
    payload = {"query": "Où est la gare ?", "n": 1, "flag": True, "none": None}
    params = {"limit": 5, "cursor": "a b/é"}
    headers = {"Authorization": "Bearer zw_key", "Content-Type": "application/json"}
    with serving(Recorder()) as server:
        settings = Settings.for_tests({"secret_key": TEST_SECRET, "var_dir": tmp_path})
        for transport in (None, httpx.HTTPTransport(retries=0)):
            pool = UpstreamPool(settings, transport)
            try:
                answer = pool.send("POST", f"{server.url}/api/v1/x", params, payload, headers)
            finally:
                pool.close()
            assert answer.status_code == 200 and answer.json() == {"data": {"ok": True}}
    by_pool, by_httpx = server.requests
    assert by_pool == by_httpx
    assert by_pool["path"] == "/api/v1/x?limit=5&cursor=a+b%2F%C3%A9"
    assert json.loads(by_pool["body"]) == payload
    assert "Où".encode() in by_pool["body"]  # UTF-8, as httpx encodes json=
    assert by_pool["headers"]["user-agent"].startswith("zappway-bridge/")


def test_answer_headers_are_case_blind_and_the_last_one_wins() -> None:
    answer = wire.Answer(429, [(b"Retry-After", b"1"), (b"retry-after", b"7")], b"")
    assert answer.header("RETRY-AFTER") == "7"
    assert answer.header("content-type") is None
    assert not answer.is_success
    assert wire.Answer(204, [], b"").is_success


def test_tls_connections_are_checked_and_reused(tmp_path: Path) -> None:
    """Over TLS the stream is upgraded by `start_tls`: the upgraded stream keeps the quick
    check, an open connection is reused, and the certificate is still verified."""
    certificate, key = _self_signed(tmp_path)
    with serving(_tls_recorder(certificate, key)) as server:
        url = f"https://127.0.0.1:{server.server_address[1]}/ping"
        pool = wire.new_pool(10, 10, ssl.create_default_context(cafile=str(certificate)))
        try:
            for _ in range(3):
                assert pool.request("GET", url).status == 200
            (connection,) = pool.connections
            stream = connection._connection._network_stream  # type: ignore[union-attr]
            assert isinstance(stream, wire.QuickCheckStream)
            assert stream.get_extra_info("ssl_object") is not None
            assert stream.get_extra_info("is_readable") is False
        finally:
            pool.close()
        assert len(server.connections) == 1
        untrusted = wire.new_pool(1, 1, ssl.create_default_context())
        with pytest.raises(httpcore.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.request("GET", url)


def _tls_recorder(certificate: Path, key: Path) -> Recorder:
    server = Recorder()
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(certificate, key)
    server.socket = served.wrap_socket(server.socket, server_side=True)
    return server


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid for a day, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "cert.pem", directory / "key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path
