"""Starlette through the real ``devserve`` command: routes, middleware, static files, lifespan."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.compat.serving import devserve, reload_after_edit, write_files

pytest.importorskip("starlette", reason="Starlette is not installed (pip install -e '.[test]')")
websockets = pytest.importorskip("websockets", reason="websockets is not installed")

MAIN = """
import contextlib

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles


async def home(request):
    return PlainTextResponse("starlette v1")


async def echo(request):
    body = await request.body()
    return JSONResponse({"method": request.method, "size": len(body),
                         "user": request.path_params["user"]})


async def ws_echo(websocket):
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(text.upper())
    await websocket.close()


class Stamp(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers["x-stamp"] = "mw"
        return response


@contextlib.asynccontextmanager
async def lifespan(app):
    print("starlette startup", flush=True)
    yield
    print("starlette shutdown", flush=True)


app = Starlette(
    routes=[
        Route("/", home),
        Route("/users/{user}", echo, methods=["GET", "POST"]),
        WebSocketRoute("/ws", ws_echo),
        Mount("/static", StaticFiles(directory="static"), name="static"),
    ],
    middleware=[Middleware(Stamp)],
    lifespan=lifespan,
)
"""

FILES = {"main.py": MAIN, "static/site.css": "body { color: teal; }\n"}


async def _shout(ws_url: str) -> str:
    async with websockets.connect(ws_url) as ws:
        await ws.send("hi")
        return str(await asyncio.wait_for(ws.recv(), 5))


def test_starlette_single_process(tmp_path: Path) -> None:
    write_files(tmp_path, FILES)
    with devserve(tmp_path, "main:app") as cli, httpx.Client(base_url=cli.url, timeout=5) as client:
        home = client.get("/")
        assert (home.text, home.headers["x-stamp"]) == ("starlette v1", "mw")
        posted = client.post("/users/ann", content=b"x" * 100_000).json()
        assert posted == {"method": "POST", "size": 100_000, "user": "ann"}
        css = client.get("/static/site.css")
        assert css.status_code == 200 and css.text == "body { color: teal; }\n"
        assert css.headers["content-type"].startswith("text/css")
        etag = css.headers["etag"]
        assert client.get("/static/site.css", headers={"if-none-match": etag}).status_code == 304
        assert client.get("/static/missing.css").status_code == 404
        ws_url = cli.url.replace("http://", "ws://") + "/ws"
        assert asyncio.run(asyncio.wait_for(_shout(ws_url), 10)) == "HI"
    assert "starlette startup" in cli.output() and "starlette shutdown" in cli.output()


def test_starlette_reload_edits_a_view(tmp_path: Path) -> None:
    write_files(tmp_path, FILES)
    with devserve(tmp_path, "main:app", reload=True) as cli:
        reload_after_edit(cli, tmp_path / "main.py", "/", "starlette v1", "starlette v2")
        assert httpx.get(cli.url + "/static/site.css", timeout=5).status_code == 200
