"""FastAPI through the real ``devserve`` command.

Routes, dependency injection (with a yield dependency), background tasks, streaming
responses, file uploads (python-multipart), a WebSocket route and the lifespan, served
single-process; then the same app under ``--reload``, edited.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx
import pytest

from tests.compat.serving import devserve, reload_after_edit, write_files
from tests.helpers import wait_until

pytest.importorskip("fastapi", reason="FastAPI is not installed (pip install -e '.[test]')")
pytest.importorskip("multipart", reason="python-multipart (FastAPI file uploads) is not installed")
websockets = pytest.importorskip("websockets", reason="websockets is not installed")

MAIN = """
import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import BackgroundTasks, Depends, FastAPI, File, Header, HTTPException, UploadFile
from fastapi import WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

HERE = Path(__file__).parent
TEARDOWNS = []


@asynccontextmanager
async def lifespan(app):
    print("lifespan startup ran", flush=True)
    yield {"greeting": "hello"}
    print("lifespan shutdown ran", flush=True)


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float


async def session():
    yield "session-1"
    TEARDOWNS.append("closed")


def api_key(x_api_key: str = Header()):
    if x_api_key != "secret":
        raise HTTPException(status_code=401, detail="bad key")
    return x_api_key


@app.get("/")
async def home():
    return {"view": "home v1"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "total": item.price * 2}


@app.get("/deps")
async def deps(key: str = Depends(api_key), db: str = Depends(session)):
    return {"key": key, "db": db, "teardowns": len(TEARDOWNS)}


def write_marker(text: str) -> None:
    (HERE / "background.txt").write_text(text)


@app.post("/background")
async def background(tasks: BackgroundTasks):
    tasks.add_task(write_marker, "task ran")
    return {"queued": True}


@app.get("/stream")
async def stream():
    async def chunks():
        for index in range(5):
            yield f"chunk {index}\\n"
            await asyncio.sleep(0.01)

    return StreamingResponse(chunks(), media_type="text/plain")


@app.post("/upload")
async def upload(file: UploadFile = File(...)):
    data = await file.read()
    import hashlib
    return {"name": file.filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"echo {text}")
    except WebSocketDisconnect:
        pass
"""


def _project(tmp_path: Path) -> Path:
    write_files(tmp_path, {"main.py": MAIN})
    return tmp_path


async def _echo(ws_url: str) -> list[str]:
    async with websockets.connect(ws_url) as ws:
        replies = []
        for text in ("one", "two"):
            await ws.send(text)
            replies.append(await asyncio.wait_for(ws.recv(), 5))
        return replies


def test_fastapi_features_single_process(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with devserve(root, "main:app") as cli, httpx.Client(base_url=cli.url, timeout=5) as client:
        cli.wait_for("lifespan startup ran")
        assert client.get("/").json() == {"view": "home v1"}
        assert client.get("/items/7", params={"q": "x"}).json() == {"item_id": 7, "q": "x"}
        assert client.get("/items/seven").status_code == 422
        assert client.post("/items", json={"name": "a", "price": 1.5}).json() == {
            "name": "a",
            "total": 3.0,
        }
        # Dependency injection: a header dependency and a yield dependency torn down after.
        assert client.get("/deps").status_code == 422
        assert client.get("/deps", headers={"x-api-key": "wrong"}).status_code == 401
        first = client.get("/deps", headers={"x-api-key": "secret"}).json()
        assert first["key"] == "secret" and first["db"] == "session-1"
        second = client.get("/deps", headers={"x-api-key": "secret"}).json()
        assert second["teardowns"] > first["teardowns"]
        # Background task: runs after the response was sent.
        assert client.post("/background").json() == {"queued": True}
        marker = root / "background.txt"
        wait_until(lambda: marker.exists() and marker.read_text() == "task ran", 5)
        # Streaming: chunked, every chunk arrives.
        with client.stream("GET", "/stream") as response:
            assert response.headers["transfer-encoding"] == "chunked"
            lines = list(response.iter_lines())
        assert lines == [f"chunk {index}" for index in range(5)]
        # File upload (multipart), larger than one read.
        payload = bytes(range(256)) * 1024
        uploaded = client.post("/upload", files={"file": ("data.bin", payload)}).json()
        assert uploaded == {
            "name": "data.bin",
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        ws_url = cli.url.replace("http://", "ws://") + "/ws"
        assert asyncio.run(asyncio.wait_for(_echo(ws_url), 10)) == ["echo one", "echo two"]
        cli.wait_for(r'"GET /items/7\?q=x HTTP/1.1" 200 OK')
    assert "lifespan shutdown ran" in cli.output()


def test_fastapi_reload_edits_a_view(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with devserve(root, "main:app", reload=True) as cli:
        reload_after_edit(cli, root / "main.py", "/", "home v1", "home v2")
        # The new generation serves everything, WebSocket included.
        ws_url = cli.url.replace("http://", "ws://") + "/ws"
        assert asyncio.run(asyncio.wait_for(_echo(ws_url), 10)) == ["echo one", "echo two"]
        assert httpx.get(cli.url + "/items/1", timeout=5).json() == {"item_id": 1, "q": None}
    assert "lifespan shutdown ran" in cli.output()
