"""Each request runs in its own copy of the connection's context.

Context variables an app sets while serving one request (asgiref's sync/async bridges do,
for Django and for WSGI apps behind ``WsgiToAsgi``) must not be seen by the next request
on the same keep-alive connection, even when that request was already waiting (pipelined
or read while the previous response finished) and is started from the previous request's
task.
"""

from __future__ import annotations

import contextvars
from typing import Any

from tests.helpers import raw_exchange, serve_in_thread

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("MARK")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    seen = MARK.get("unset")
    MARK.set(f"set by {scope['path']}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"{scope['path']}: {seen};".encode()})


def test_pipelined_requests_do_not_share_context_variables() -> None:
    requests = (
        b"".join(f"GET /{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for n in range(1, 4))
        + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    with serve_in_thread(app, access_log=False, lifespan="off") as server:
        reply = raw_exchange(server.port, requests)
    for path in ("/1", "/2", "/3", "/last"):
        assert f"{path}: unset;".encode() in reply, reply
