"""A bare ASGI 3 callable (no framework) through the real ``devserve`` command."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.compat.serving import devserve, reload_after_edit, write_files

websockets = pytest.importorskip("websockets", reason="websockets is not installed")

APP = """
VERSION = "bare v1"
STATE = {}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = "yes"
                await send({"type": "lifespan.startup.complete"})
            else:
                print("bare shutdown", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept", "subprotocol": None})
        message = await receive()
        await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
        await send({"type": "websocket.close", "code": 1000})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    text = f"{VERSION} {scope['method']} {scope['path']} {len(body)} {scope['state']['started']}"
    headers = [(b"content-type", b"text/plain"), (b"x-asgi", scope["asgi"]["version"].encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"!"})
"""


async def _binary_echo(ws_url: str) -> bytes:
    async with websockets.connect(ws_url) as ws:
        await ws.send(b"\x00\x01")
        return bytes(await asyncio.wait_for(ws.recv(), 5))


def test_bare_asgi_single_process(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.py": APP})
    # No APP: discovery finds app.py's `app`.
    with devserve(tmp_path) as cli, httpx.Client(base_url=cli.url, timeout=5) as client:
        response = client.put("/a/b", content=b"12345")
        assert response.text == "bare v1 PUT /a/b 5 yes!"
        assert response.headers["x-asgi"] == "3.0"
        ws_url = cli.url.replace("http://", "ws://") + "/ws"
        assert asyncio.run(asyncio.wait_for(_binary_echo(ws_url), 10)) == b"\x00\x01"
    assert "using app app:app" in cli.output()
    assert "bare shutdown" in cli.output()


def test_bare_asgi_reload(tmp_path: Path) -> None:
    write_files(tmp_path, {"app.py": APP})
    with devserve(tmp_path, "app.py", reload=True) as cli:
        reload_after_edit(cli, tmp_path / "app.py", "/", "bare v1", "bare v2")
