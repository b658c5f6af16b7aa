"""Bench app: a bare ASGI app that answers "Hello, world!" and ignores lifespan."""

from __future__ import annotations

from typing import Any

BODY = b"Hello, world!"
HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with "Hello, world!"; ignore other scopes."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
