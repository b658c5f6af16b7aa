"""The HTTP/1.1 server over real loopback sockets: ordinary traffic and protocol rules."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any

import httpx
import pytest

from devserve.events import AppErrored, RequestCompleted
from tests.helpers import raw_exchange, read_response, recv_until, serve_in_thread, wait_until
from tests.integration.apps import echo_app


@pytest.fixture(scope="module")
def server() -> Any:
    with serve_in_thread(echo_app, root_path="", lifespan="on") as srv:
        yield srv


def test_scope_is_complete(server: Any) -> None:
    response = httpx.get(f"{server.url}/a%20b/c?x=1&y=2", timeout=5)
    assert response.status_code == 200
    info = response.json()
    assert info["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert info["http_version"] == "1.1"
    assert info["method"] == "GET"
    assert info["scheme"] == "http"
    assert info["path"] == "/a b/c"
    assert info["raw_path"] == "/a%20b/c"
    assert info["query_string"] == "x=1&y=2"
    assert info["root_path"] == ""
    assert ["host", f"127.0.0.1:{server.port}"] in info["headers"]
    assert info["client"][0] == "127.0.0.1"
    assert info["server"] == ["127.0.0.1", server.port]
    assert info["state"] == {"answer": 42}, "lifespan state is shared into requests"
    assert response.headers["server"] == "devserve"
    assert "date" in response.headers
    assert response.headers["content-length"] == str(len(response.content))


def test_keep_alive_and_pipelining_answer_in_order(server: Any) -> None:
    requests = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(requests)
        data = recv_until(sock, lambda d: d.count(b'"path"') == 5)
        # Same connection, still open: one more request is served.
        sock.sendall(b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b'"/again"' in recv_until(sock, lambda d: b'"/again"' in d)
    paths = re.findall(rb'"path": "([^"]+)"', data)
    assert paths == [b"/p%d" % i for i in range(5)]


def test_http10_and_head(server: Any) -> None:
    reply = raw_exchange(server.port, b"GET /old HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200")
    assert b'"http_version": "1.0"' in reply
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(sock, lambda d: b'"/after"' in d)
    head_response, _, rest = data.partition(b"\r\n\r\n")
    assert head_response.startswith(b"HTTP/1.1 200")
    assert rest.startswith(b"HTTP/1.1 200"), "HEAD response has no body"


def test_expect_100_continue(server: Any) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 ")
        sock.sendall(b"hello")
        assert b'"body_len": 5' in read_response(sock)


def test_chunked_upload_and_streaming_response(server: Any) -> None:
    def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 10_000

    response = httpx.post(f"{server.url}/up", content=chunks(), timeout=5)
    assert response.json()["body_len"] == 100_000
    streamed = httpx.get(f"{server.url}/stream", timeout=5)
    assert streamed.text == "chunk0\nchunk1\nchunk2\n"
    assert streamed.headers["transfer-encoding"] == "chunked"


def test_app_errors(server: Any) -> None:
    response = httpx.get(f"{server.url}/error", timeout=5)
    assert response.status_code == 500
    assert "boom" not in response.text
    wait_until(
        lambda: any(isinstance(e, AppErrored) and e.message == "boom" for e in server.events)
    )
    error = next(e for e in server.events if isinstance(e, AppErrored) and e.message == "boom")
    assert "RuntimeError: boom" in error.traceback
    assert error.path == "/error"
    assert httpx.get(f"{server.url}/no-response", timeout=5).status_code == 500
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/error-after-start", timeout=5)
    assert httpx.get(f"{server.url}/fine", timeout=5).status_code == 200


def test_request_completed_events_carry_latency(server: Any) -> None:
    httpx.get(f"{server.url}/slow?0.2", timeout=5)
    wait_until(
        lambda: any(isinstance(e, RequestCompleted) and e.path == "/slow" for e in server.events)
    )
    event = next(e for e in server.events if isinstance(e, RequestCompleted) and e.path == "/slow")
    assert event.duration_ms >= 190
    assert event.status == 200
    assert event.bytes_out > 0


def test_client_disconnect_reaches_app() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        seen.append((await receive())["type"])

    with serve_in_thread(app, lifespan="off") as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            wait_until(lambda: bool(srv.events) or True)
        wait_until(lambda: seen == ["http.disconnect"])


def test_root_path_and_proxy_headers() -> None:
    with serve_in_thread(echo_app, root_path="/api", forwarded_allow_ips=("127.0.0.1",)) as srv:
        reply = httpx.get(
            f"{srv.url}/items",
            headers={"x-forwarded-for": "203.0.113.7, 10.1.1.1", "x-forwarded-proto": "https"},
            timeout=5,
        ).json()
        assert reply["path"] == "/api/items"
        assert reply["root_path"] == "/api"
        assert reply["client"][0] == "10.1.1.1"
        assert reply["scheme"] == "https"
    with serve_in_thread(echo_app, forwarded_allow_ips=("10.0.0.1",)) as srv:
        reply = httpx.get(
            f"{srv.url}/", headers={"x-forwarded-for": "203.0.113.7"}, timeout=5
        ).json()
        assert reply["client"][0] == "127.0.0.1", "untrusted peers cannot set the client"


def test_concurrency_limit_answers_503() -> None:
    release = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/hold":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve_in_thread(app, lifespan="off", limit_concurrency=1) as srv:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as hold:
            hold.sendall(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
            replies: list[bytes] = []

            def refused() -> bool:
                replies.append(raw_exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
                return replies[-1].startswith(b"HTTP/1.1 503")

            # The held request takes the only slot once the server has read it.
            wait_until(refused, timeout_s=5, step_s=0.02)


async def _late_body_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    if scope["path"] == "/reads":
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["path"].encode() + b":" + body})


def test_pipelined_request_after_a_body_that_ended_late_reads_its_own_body() -> None:
    with (
        serve_in_thread(_late_body_app, lifespan="off") as srv,
        socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock,
    ):
        sock.sendall(b"POST /ignores HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        recv_until(sock, lambda d: b"/ignores:" in d)
        # The first body ends in the same packet as the next request's head.
        sock.sendall(b"hello" + b"POST /reads HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
        time.sleep(0.1)  # the client's own pacing: the second body comes later
        sock.sendall(b"abc")
        assert b"/reads:abc" in recv_until(sock, lambda d: b"/reads:abc" in d, timeout_s=3)
