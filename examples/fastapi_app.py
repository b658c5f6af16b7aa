"""A small FastAPI application: routes, a pydantic model, a streaming response, a WebSocket.

Run it with ``devserve examples/fastapi_app.py --reload`` (needs ``pip install fastapi``),
then edit this file and watch the new code answer within milliseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, list[str]]]:
    """Share an in-memory store with every request (ASGI lifespan state)."""
    yield {"items": []}


app = FastAPI(title="devserve example", lifespan=lifespan)


class Item(BaseModel):
    """An item to store."""

    name: str
    price: float


@app.get("/")
async def hello() -> dict[str, str]:
    """Say hello."""
    return {"message": "Hello from devserve"}


@app.post("/items")
async def add_item(item: Item) -> Item:
    """Validate and echo an item."""
    return item


@app.get("/count/{n}")
async def count(n: int) -> StreamingResponse:
    """Stream the numbers 1..n, one per line."""

    async def numbers() -> AsyncIterator[str]:
        for i in range(1, n + 1):
            yield f"{i}\n"

    return StreamingResponse(numbers(), media_type="text/plain")


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    """Echo text messages back."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        return
