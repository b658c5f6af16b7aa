"""Reload bench app (bare ASGI): every HTTP request gets the current ``version.VERSION``."""

from __future__ import annotations

from typing import Any

from version import VERSION

BODY = VERSION.encode()
HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request with the version string; ignore other scopes."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
