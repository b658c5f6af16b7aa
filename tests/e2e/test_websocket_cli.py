"""WebSocket through the real `devserve` command: echo, access log, 1012 on shutdown, --ws none."""

from __future__ import annotations

import asyncio
import signal
import textwrap
from pathlib import Path

import httpx
import websockets

from tests.helpers import assert_no_children, start_server_cli, stop_cli

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
