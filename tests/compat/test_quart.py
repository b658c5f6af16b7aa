"""Quart (Flask's API on ASGI) through the real ``devserve`` command: routes, JSON, form
data, a WebSocket route and serving hooks; then a view edited under ``--reload``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.compat.serving import devserve, reload_after_edit, write_files

pytest.importorskip("quart", reason="Quart is not installed (pip install -e '.[test]')")
websockets = pytest.importorskip("websockets", reason="websockets is not installed")

MAIN = """
from quart import Quart, jsonify, request, websocket

app = Quart(__name__)


@app.before_serving
async def started():
    print("quart startup", flush=True)


@app.after_serving
async def stopped():
    print("quart shutdown", flush=True)


@app.route("/")
async def index():
    return "quart v1"


@app.route("/greet/<name>", methods=["GET", "POST"])
async def greet(name):
    form = await request.form
    return jsonify(hello=name, method=request.method, title=form.get("title"))


@app.websocket("/ws")
async def ws():
    message = await websocket.receive()
    await websocket.send(f"quart got {message}")
"""


async def _talk(ws_url: str) -> str:
    async with websockets.connect(ws_url) as ws:
        await ws.send("ping")
        return str(await asyncio.wait_for(ws.recv(), 5))


def test_quart_single_process(tmp_path: Path) -> None:
    write_files(tmp_path, {"main.py": MAIN})
    with devserve(tmp_path, "main:app") as cli, httpx.Client(base_url=cli.url, timeout=5) as client:
        cli.wait_for("quart startup")
        assert client.get("/").text == "quart v1"
        assert client.post("/greet/bo", data={"title": "dr"}).json() == {
            "hello": "bo",
            "method": "POST",
            "title": "dr",
        }
        assert client.get("/nope").status_code == 404
        ws_url = cli.url.replace("http://", "ws://") + "/ws"
        assert asyncio.run(asyncio.wait_for(_talk(ws_url), 10)) == "quart got ping"
    assert "quart shutdown" in cli.output()


def test_quart_reload_edits_a_view(tmp_path: Path) -> None:
    write_files(tmp_path, {"main.py": MAIN})
    with devserve(tmp_path, "main:app", reload=True) as cli:
        reload_after_edit(cli, tmp_path / "main.py", "/", "quart v1", "quart v2")
