"""TLS listeners over loopback: TLS is served, plain HTTP is redirected, silence is closed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devserve.certstore import CertificatePaths, ensure_certificates
from devserve.config import Config
from devserve.events import Event
from devserve.sockets import Listener, bind
from devserve.tls import make_server_ssl_context
from devserve.tlssniff import TLSAcceptor, redirect_response
from devserve.worker import Worker
from tests.helpers import _module_app, raw_exchange, read_until_close

HEAD_TIMEOUT_S = 0.5


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = f"hello {scope['scheme']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def cert_paths(tmp_path_factory: pytest.TempPathFactory) -> CertificatePaths:
    cert_dir = tmp_path_factory.mktemp("tlssniff") / "certs"
    return ensure_certificates(cert_dir, ["localhost", "127.0.0.1"])


@contextlib.contextmanager
def serve_tls(paths: CertificatePaths, loop_name: str) -> Iterator[int]:
    """A Worker with one TLS listener on 127.0.0.1:0, in a thread; yields the port."""
    config = Config.from_options(
        {
            "app": _module_app(hello_app),
            "port": 0,
            "loop": loop_name,
            "timeout_request_head_s": HEAD_TIMEOUT_S,
            "lifespan": "off",
        }
    )
    listener = bind(host="127.0.0.1", port=0, uds=None, fd=None, backlog=64, scheme="https")
    assert listener.is_tls
    context = make_server_ssl_context(paths.leaf_cert, paths.leaf_key)
    ready = threading.Event()
    box: dict[str, Any] = {}

    def emit(event: Event) -> None:
        if type(event).__name__ == "ServerStarted":
            ready.set()

    def run() -> None:
        from devserve.worker import loop_factory  # noqa: PLC0415

        loop = loop_factory(loop_name)()
        worker = Worker(config, [listener], emit=emit, ssl_context=context)
        box["worker"], box["loop"] = worker, loop
        try:
            loop.run_until_complete(worker.serve())
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "server did not start"
        yield listener.sock.getsockname()[1]
    finally:
        with contextlib.suppress(KeyError, RuntimeError):
            box["loop"].call_soon_threadsafe(box["worker"].request_stop)
        thread.join(10)
        listener.sock.close()
        assert not thread.is_alive()


@pytest.fixture(params=["asyncio", "uvloop"])
def tls_port(request: pytest.FixtureRequest, cert_paths: CertificatePaths) -> Iterator[int]:
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    with serve_tls(cert_paths, request.param) as port:
        yield port


def _get_tls(port: int, ca: Path) -> httpx.Response:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=5) as client:
        return client.get(f"https://localhost:{port}/ok")


def test_tls_request_is_served(tls_port: int, cert_paths: CertificatePaths) -> None:
    response = _get_tls(tls_port, cert_paths.ca_cert)
    assert response.status_code == 200
    assert response.text == "hello https"


def test_plain_http_is_redirected(tls_port: int, cert_paths: CertificatePaths) -> None:
    request = b"GET /a/b?c=1 HTTP/1.1\r\nHost: 127.0.0.1:1234\r\n\r\n"
    reply = raw_exchange(tls_port, request)
    head = reply.split(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 307 ")
    assert f"location: https://127.0.0.1:{tls_port}/a/b?c=1" in head
    assert "connection: close" in head
    response = httpx.get(f"http://localhost:{tls_port}/x", timeout=5)
    assert response.status_code == 307
    assert response.headers["location"] == f"https://localhost:{tls_port}/x"
    assert _get_tls(tls_port, cert_paths.ca_cert).status_code == 200


def test_silent_connection_is_closed(tls_port: int, cert_paths: CertificatePaths) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as sock:
        assert read_until_close(sock, timeout_s=5) == b""
    assert time.monotonic() - started < HEAD_TIMEOUT_S + 2
    assert _get_tls(tls_port, cert_paths.ca_cert).status_code == 200


def test_garbage_and_half_heads_do_not_hurt(tls_port: int, cert_paths: CertificatePaths) -> None:
    assert raw_exchange(tls_port, b"\x00\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x")  # never finished: closed at the deadline
        assert read_until_close(sock, timeout_s=5) == b""
    with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello")  # a broken handshake
        read_until_close(sock, timeout_s=5)
    assert _get_tls(tls_port, cert_paths.ca_cert).status_code == 200


def test_close_stops_accepting(cert_paths: CertificatePaths) -> None:
    listener: Listener = bind(
        host="127.0.0.1", port=0, uds=None, fd=None, backlog=8, scheme="https"
    )
    context = make_server_ssl_context(cert_paths.leaf_cert, cert_paths.leaf_key)
    port = listener.sock.getsockname()[1]

    async def scenario() -> bytes:
        acceptor = TLSAcceptor(
            listener.sock, asyncio.Protocol, context, head_timeout_s=HEAD_TIMEOUT_S
        )
        acceptor.start()
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)  # accepted and being sniffed
        acceptor.close()  # drops it, and accepts nothing more
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", port)  # sits in backlog
        writer2.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            return await asyncio.wait_for(reader2.read(100), 0.3)
        except asyncio.TimeoutError:
            return b"<nothing>"
        finally:
            writer.close()
            writer2.close()

    try:
        assert asyncio.run(asyncio.wait_for(scenario(), 5)) == b"<nothing>"
    finally:
        listener.sock.close()


def test_pause_keeps_accepted_connections_and_resume_accepts_again(
    cert_paths: CertificatePaths,
) -> None:
    """A worker stepping aside pauses its TLS acceptor: nothing accepted may be dropped."""
    listener: Listener = bind(
        host="127.0.0.1", port=0, uds=None, fd=None, backlog=8, scheme="https"
    )
    context = make_server_ssl_context(cert_paths.leaf_cert, cert_paths.leaf_key)
    port = listener.sock.getsockname()[1]
    request = b"GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n"

    async def scenario() -> tuple[bytes, bytes, bytes]:
        acceptor = TLSAcceptor(
            listener.sock, asyncio.Protocol, context, head_timeout_s=HEAD_TIMEOUT_S * 4
        )
        acceptor.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)  # accepted and being sniffed (no first byte yet)
        acceptor.pause()
        writer.write(request)  # plain HTTP on a TLS port: still redirected
        redirected = await asyncio.wait_for(reader.read(100), 2)
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", port)  # in the backlog
        writer2.write(request)
        try:
            held = await asyncio.wait_for(reader2.read(100), 0.3)
        except asyncio.TimeoutError:
            held = b"<nothing>"
        acceptor.resume()
        answered = await asyncio.wait_for(reader2.read(100), 2)
        acceptor.close()
        writer.close()
        writer2.close()
        return redirected, held, answered

    try:
        redirected, held, answered = asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        listener.sock.close()
    assert redirected.startswith(b"HTTP/1.1 307 ")
    assert held == b"<nothing>"
    assert answered.startswith(b"HTTP/1.1 307 ")


@pytest.mark.parametrize(
    ("head", "location"),
    [
        (b"GET /p?q=1 HTTP/1.1\r\nHost: example.test:80", "https://example.test:8443/p?q=1"),
        (b"GET / HTTP/1.1\r\nhost: [::1]:80", "https://[::1]:8443/"),
        (b"GET / HTTP/1.0", "https://127.0.0.1:8443/"),
        (b"GET http://x/ HTTP/1.1\r\nHost: evil\r\n\tx", "https://evil:8443/"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\nX: 1", "https://127.0.0.1:8443/"),
    ],
)
def test_redirect_response(head: bytes, location: str) -> None:
    reply = redirect_response(head, fallback_host="127.0.0.1", port=8443).decode()
    assert reply.startswith("HTTP/1.1 307 Temporary Redirect\r\n")
    assert f"\r\nlocation: {location}\r\n" in reply
    assert "\r\nconnection: close\r\n" in reply


def test_redirect_to_default_port_and_bad_request() -> None:
    reply = redirect_response(b"GET /x HTTP/1.1", fallback_host="localhost", port=443)
    assert b"location: https://localhost/x\r\n" in reply
    assert redirect_response(b"\x80\x81", fallback_host="h", port=1).startswith(b"HTTP/1.1 400 ")
