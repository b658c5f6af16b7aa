"""Type definitions for the ASGI 3 interface (scopes, messages, callables).

Only types live here. Messages are typed loosely as ``dict[str, Any]`` at the call
boundary because applications may add extension keys; the TypedDicts document the keys
devserve itself reads and writes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal, TypedDict

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ASGIVersions(TypedDict):
    """The ``scope["asgi"]`` mapping."""

    version: str
    spec_version: str


class HTTPScope(TypedDict):
    """The scope of one HTTP request."""

    type: Literal["http"]
    asgi: ASGIVersions
    http_version: str
    method: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: list[tuple[bytes, bytes]]
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    state: dict[str, Any]
    extensions: dict[str, dict[object, object]]


class WebSocketScope(TypedDict):
    """The scope of one WebSocket connection."""

    type: Literal["websocket"]
    asgi: ASGIVersions
    http_version: str
    scheme: str
    path: str
    raw_path: bytes
    query_string: bytes
    root_path: str
    headers: list[tuple[bytes, bytes]]
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    subprotocols: list[str]
    state: dict[str, Any]
    extensions: dict[str, dict[object, object]]
