"""Litestar through the real ``devserve`` command: handlers, DTO-free dataclass bodies,
dependency injection, a WebSocket listener and lifespan hooks; then a view edited under
``--reload``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.compat.serving import devserve, reload_after_edit, write_files

pytest.importorskip("litestar", reason="Litestar is not installed (pip install -e '.[test]')")
websockets = pytest.importorskip("websockets", reason="websockets is not installed")

MAIN = """
from dataclasses import dataclass

from litestar import Litestar, get, post, websocket_listener
from litestar.di import Provide


@dataclass
class Order:
    item: str
    quantity: int


async def provide_prefix() -> str:
    return "order"


@get("/")
async def index() -> str:
    return "litestar v1"


@get("/orders/{order_id:int}")
async def read_order(order_id: int, prefix: str) -> dict[str, object]:
    return {"id": order_id, "label": f"{prefix}-{order_id}"}


@post("/orders")
async def create_order(data: Order) -> dict[str, object]:
    return {"item": data.item, "quantity": data.quantity * 10}


@websocket_listener("/ws")
async def shout(data: str) -> str:
    return data.upper()


def started() -> None:
    print("litestar startup", flush=True)


def stopped() -> None:
    print("litestar shutdown", flush=True)


app = Litestar(
    route_handlers=[index, read_order, create_order, shout],
    dependencies={"prefix": Provide(provide_prefix)},
    on_startup=[started],
    on_shutdown=[stopped],
)
"""


async def _shout(ws_url: str) -> str:
    async with websockets.connect(ws_url) as ws:
        await ws.send("quiet")
        return str(await asyncio.wait_for(ws.recv(), 5))


def test_litestar_single_process(tmp_path: Path) -> None:
    write_files(tmp_path, {"main.py": MAIN})
    with devserve(tmp_path, "main:app") as cli, httpx.Client(base_url=cli.url, timeout=5) as client:
        cli.wait_for("litestar startup")
        assert client.get("/").text == "litestar v1"
        assert client.get("/orders/5").json() == {"id": 5, "label": "order-5"}
        assert client.get("/orders/five").status_code in {400, 404}
        created = client.post("/orders", json={"item": "tea", "quantity": 2})
        assert created.status_code == 201
        assert created.json() == {"item": "tea", "quantity": 20}
        assert client.post("/orders", json={"item": "tea"}).status_code == 400
        ws_url = cli.url.replace("http://", "ws://") + "/ws"
        assert asyncio.run(asyncio.wait_for(_shout(ws_url), 10)) == "QUIET"
    assert "litestar shutdown" in cli.output()


def test_litestar_reload_edits_a_view(tmp_path: Path) -> None:
    write_files(tmp_path, {"main.py": MAIN})
    with devserve(tmp_path, "main:app", reload=True) as cli:
        reload_after_edit(cli, tmp_path / "main.py", "/", "litestar v1", "litestar v2")
