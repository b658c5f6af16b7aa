"""Small ASGI applications the integration tests serve."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def _lifespan(receive: Any, send: Any, state: dict[str, Any] | None = None) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if state is not None:
                state["answer"] = 42
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(send: Any, status: int, body: bytes, ctype: bytes = b"text/plain") -> None:
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", ctype)]}
    )
    await send({"type": "http.response.body", "body": body})


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo the scope (minus non-JSON bits) and the whole request body as JSON."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, scope.get("state"))
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/error":
        raise RuntimeError("boom")
    if path == "/error-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("late boom")
    if path == "/no-response":
        return
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"chunk%d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/slow":
        await asyncio.sleep(float(scope["query_string"] or b"0.5"))
    info = {
        "type": scope["type"],
        "asgi": scope["asgi"],
        "http_version": scope["http_version"],
        "method": scope["method"],
        "scheme": scope["scheme"],
        "path": path,
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope["root_path"],
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "client": list(scope["client"]) if scope["client"] else None,
        "server": list(scope["server"]) if scope["server"] else None,
        "state": scope.get("state", {}),
        "body_len": len(body),
    }
    await respond(send, 200, json.dumps(info).encode(), b"application/json")
