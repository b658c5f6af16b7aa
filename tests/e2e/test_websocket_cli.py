"""WebSocket through the real `devserve` command: echo, access log, 1012 on shutdown, --ws none,
a FastAPI route, and bad input (through the HTTP upgrade path) that leaves the server serving.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import struct
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from tests.e2e.test_reload import reload_server, write
from tests.helpers import (
    assert_no_children,
    recv_until,
    run_async,
    start_server_cli,
    stop_cli,
    ws_frame,
)

ECHO = """
async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo:" + (message.get("text") or "")})
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain http"})
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "main.py").write_text(textwrap.dedent(ECHO))
    return tmp_path


def test_echo_and_close_1012_on_shutdown(tmp_path: Path) -> None:
    cli = start_server_cli(["main:app"], _project(tmp_path))
    ws_url = cli.url.replace("http://", "ws://") + "/chat"

    async def scenario() -> int | None:
        async with websockets.connect(ws_url) as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 5) == "echo:hi"
            cli.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        return None

    try:
        code = asyncio.run(asyncio.wait_for(scenario(), 15))
        assert code == 1012, "service restart tells clients to reconnect"
        assert cli.proc.wait(10) == 0
        cli.wait_for(r'"WebSocket /chat" \[accepted\]')
        cli.wait_for(r'"WebSocket /chat" closed 1012 after [0-9.]+ s \(1 in, 1 out\)')
    finally:
        stop_cli(cli)
    assert_no_children(cli.proc.pid)


def test_ws_none_serves_upgrades_as_http(tmp_path: Path) -> None:
    cli = start_server_cli(["main:app", "--ws", "none"], _project(tmp_path))
    try:
        response = httpx.get(
            cli.url,
            headers={
                "connection": "upgrade",
                "upgrade": "websocket",
                "sec-websocket-version": "13",
                "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
            timeout=5,
        )
        assert response.status_code == 200
        assert response.text == "plain http"
    finally:
        assert stop_cli(cli) == 0


FASTAPI_APP = """
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.websocket("/ws/{room}")
async def room(websocket: WebSocket, room: str) -> None:
    await websocket.accept(subprotocol="chat.v1")
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"room": room, "echo": data})
    except WebSocketDisconnect as exc:
        print(f"left {room} with {exc.code}", flush=True)
"""


def test_fastapi_websocket_route_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "api.py").write_text(FASTAPI_APP)
    cli = start_server_cli(["api:app"], tmp_path)
    ws_url = cli.url.replace("http://", "ws://")

    async def scenario() -> None:
        async with websockets.connect(
            ws_url + "/ws/lobby", subprotocols=[Subprotocol("chat.v1")]
        ) as ws:
            assert ws.subprotocol == "chat.v1"
            assert ws.response is not None
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            for payload in ({"n": 1}, {"text": "x" * 5000}, {"n": 2}):  # small and deflated
                await ws.send(json.dumps(payload))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert reply == {"room": "lobby", "echo": payload}
            await ws.close(code=4001)
        with pytest.raises(InvalidStatus) as info:  # no such route: denied before accept
            async with websockets.connect(ws_url + "/nowhere"):
                pass
        assert info.value.response.status_code == 403

    try:
        run_async(scenario(), 15)
        cli.wait_for(r"left lobby with 4001")
        cli.wait_for(r'"WebSocket /ws/lobby" closed 4001 after [0-9.]+ s \(3 in, 3 out\)')
    finally:
        assert stop_cli(cli) == 0
    assert_no_children(cli.proc.pid)


def _handshake(*, version: bytes = b"13", key: bool = True) -> bytes:
    head = (
        b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: " + version + b"\r\n"
    )
    if key:
        head += b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n"
    return head + b"\r\n"


def _close_code_after(port: int, wire: bytes) -> int:
    """Open a WebSocket by hand, send ``wire``, return the code of the server's close frame."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(_handshake())
        head = recv_until(sock, lambda data: b"\r\n\r\n" in data)
        assert head.startswith(b"HTTP/1.1 101"), head
        rest = head.split(b"\r\n\r\n", 1)[1]
        sock.sendall(wire)
        data = recv_until(sock, lambda data: len(rest + data) >= 4, 5)
        frame = rest + data
        assert frame[0] == 0x88, frame  # FIN + close
        (code,) = struct.unpack("!H", frame[2:4])
        return int(code)


def test_every_bad_input_is_refused_and_the_next_client_is_served(tmp_path: Path) -> None:
    cli = start_server_cli(["main:app", "--ws-max-size", "1000"], _project(tmp_path))
    port = urlsplit(cli.url).port
    assert port is not None
    ws_url = cli.url.replace("http://", "ws://") + "/chat"

    async def still_serving(tag: str) -> None:
        async with websockets.connect(ws_url) as ws:
            await ws.send(tag)
            assert await asyncio.wait_for(ws.recv(), 5) == "echo:" + tag

    bad_handshakes = {
        "version": (_handshake(version=b"8"), b"HTTP/1.1 426"),
        "no-key": (_handshake(key=False), b"HTTP/1.1 400"),
    }
    violations = {
        "unmasked": (ws_frame(0x1, b"unmasked", mask=False), 1002),
        "bad-utf8": (ws_frame(0x1, b"bad \xff\xfe utf-8"), 1007),
        "reserved-opcode": (ws_frame(0x3, b"reserved"), 1002),
        "control-too-long": (ws_frame(0x9, b"p" * 126), 1002),
        "too-big": (ws_frame(0x2, b"x" * 1001), 1009),
    }
    try:
        for name, (head, status) in bad_handshakes.items():
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(head)
                response = recv_until(sock, lambda data: b"\r\n\r\n" in data)
                assert response.startswith(status), (name, response[:40])
            run_async(still_serving(name))
        for name, (wire, code) in violations.items():
            assert _close_code_after(port, wire) == code, name
            run_async(still_serving(name))
    finally:
        assert stop_cli(cli) == 0
    assert not [line for line in cli.lines if "Traceback" in line], cli.lines
    assert_no_children(cli.proc.pid)


def test_reload_closes_websockets_with_1012_and_the_new_code_answers(tmp_path: Path) -> None:
    write(tmp_path / "main.py", ECHO)
    with reload_server(tmp_path) as cli:
        ws_url = cli.url.replace("http://", "ws://") + "/chat"

        async def until_closed() -> int | None:
            async with websockets.connect(ws_url) as ws:
                await ws.send("hi")
                assert await asyncio.wait_for(ws.recv(), 5) == "echo:hi"
                write(tmp_path / "main.py", ECHO.replace('"echo:"', '"v2:"'))
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                except websockets.ConnectionClosed as closed:
                    return closed.rcvd.code if closed.rcvd else None
            return None

        async def echo() -> str | bytes:
            async with websockets.connect(ws_url) as ws:
                await ws.send("hi")
                return await asyncio.wait_for(ws.recv(), 5)

        assert run_async(until_closed(), 15) == 1012, "the draining worker says: reconnect"
        assert run_async(echo()) == "v2:hi"
