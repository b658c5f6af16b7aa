"""Every bad-input row of DESIGN.md over raw sockets; after each, a good client is served."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httpx
import pytest

from tests.helpers import raw_exchange, read_until_close, recv_until, serve_in_thread
from tests.integration.apps import echo_app

HEAD_TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def server() -> Any:
    with serve_in_thread(
        echo_app,
        lifespan="off",
        timeout_request_head_s=HEAD_TIMEOUT_S,
        timeout_request_body_s=HEAD_TIMEOUT_S,
        timeout_keep_alive_s=HEAD_TIMEOUT_S,
        max_header_count=50,
    ) as srv:
        yield srv


def _good(server: Any) -> None:
    assert httpx.get(f"{server.url}/good", timeout=5).status_code == 200


BAD_REQUESTS = {
    "cl-and-te": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    ),
    "duplicate-cl": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
    "bad-chunk": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n",
        400,
    ),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    "nul-in-header": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "bare-lf": (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400),
    "no-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "garbage": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 hello\r\n\r\n", 400),
    "unsupported-te": (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    "huge-head": (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    "huge-uri": (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "too-many-headers": (
        b"GET / HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-%d: 1\r\n" % i for i in range(60))
        + b"\r\n",
        431,
    ),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_is_refused_and_closed(server: Any, name: str) -> None:
    raw, status = BAD_REQUESTS[name]
    reply = raw_exchange(server.port, raw)
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:200]
    assert b"connection: close" in reply.lower()
    assert b"/smuggled" not in reply, "nothing after a refused request is read as a request"
    _good(server)


def test_silent_connection_is_closed(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()
        assert read_until_close(sock, timeout_s=5) == b""
        assert time.monotonic() - started < HEAD_TIMEOUT_S + 2
    _good(server)


def test_trickled_head_is_cut_off_on_a_clock(server: Any) -> None:
    """Sending a header line every 0.2 s does not extend the head deadline."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        reply = b""
        for i in range(20):
            time.sleep(0.1)  # the client's own pacing, not synchronisation
            try:
                sock.sendall(b"X-%d: y\r\n" % i)
            except OSError:
                break
        reply = read_until_close(sock, timeout_s=5)
        assert time.monotonic() - started < HEAD_TIMEOUT_S + 1.5
    assert reply.startswith(b"HTTP/1.1 408") or reply == b""
    _good(server)


def test_stalled_body_times_out(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part")
        reply = read_until_close(sock, timeout_s=5)
    assert reply.startswith(b"HTTP/1.1 408")
    _good(server)


def test_idle_keep_alive_is_closed(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        recv_until(sock, lambda d: b"\r\n\r\n" in d)
        read_until_close(sock, timeout_s=HEAD_TIMEOUT_S + 3)


def test_a_thousand_idle_connections_do_not_block_a_good_client(server: Any) -> None:
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        started = time.monotonic()
        _good(server)
        assert time.monotonic() - started < 2
    finally:
        for sock in idle:
            sock.close()


def test_slow_reader_does_not_grow_memory() -> None:
    """A client that reads nothing makes the app's send() wait: bounded buffering."""
    sent = []
    chunk = b"x" * 65536

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(2000):  # 128 MiB if nothing pushed back
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent.append(len(chunk))
        await send({"type": "http.response.body", "body": b""})

    with serve_in_thread(app, lifespan="off") as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            previous = -1
            deadline = time.monotonic() + 3
            # Wait until the app stops making progress (it is blocked in send()).
            while time.monotonic() < deadline:
                current = len(sent)
                if current == previous:
                    break
                previous = current
                time.sleep(0.2)
            assert sum(sent) < 32 * 1024 * 1024, f"server buffered {sum(sent)} bytes"
            # Reading resumes the app.
            got = recv_until(sock, lambda d: len(d) > 4 * 1024 * 1024, timeout_s=10)
            assert len(got) > 4 * 1024 * 1024


def test_fast_uploader_cannot_outrun_the_app() -> None:
    gate = asyncio.Event()
    received = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        received.append(1)

    with (
        serve_in_thread(
            app, lifespan="off", timeout_request_body_s=10.0, timeout_graceful_shutdown_s=0.5
        ) as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock,
    ):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        total = 200 * 1024 * 1024
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
        sock.settimeout(1.0)
        pushed = 0
        block = b"y" * 65536
        try:
            while pushed < total:
                pushed += sock.send(block)
        except TimeoutError:
            pass
        assert pushed < 64 * 1024 * 1024, f"server accepted {pushed} bytes unread"
