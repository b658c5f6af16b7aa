"""Loopback tests of WebSocketProtocol on 127.0.0.1:0 with the websockets client and raw frames."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvloop
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from devserve.asgi import ASGIApp, Message, Receive, Scope, Send
from devserve.events import WebSocketClosed, WebSocketOpened
from devserve.websocket_server import WebSocketProtocol, WebSocketSettings
from tests.helpers import ws_frame

TIMEOUT_S = 10.0


Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Run a scenario to completion under a deadline, on each event loop devserve supports."""
    loop_factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=loop_factory) as asyncio_runner:
            asyncio_runner.run(asyncio.wait_for(coro, TIMEOUT_S))

    return runner


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll a condition the test cannot await directly, under a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@dataclass
class Harness:
    settings: WebSocketSettings
    port: int = 0
    protocols: list[WebSocketProtocol] = field(default_factory=list)
    finished: list[WebSocketProtocol] = field(default_factory=list)
    events: list[object] = field(default_factory=list)
    disconnects: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    progress: list[int] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def disconnect_code(self) -> int:
        message = await asyncio.wait_for(self.disconnects.get(), 5)
        assert message["type"] == "websocket.disconnect"
        code = message["code"]
        assert isinstance(code, int)
        return code


Route = Callable[[Harness, Scope, Receive, Send], Awaitable[None]]


async def echo_until_disconnect(h: Harness, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            await h.disconnects.put(message)
            return
        key = "text" if message.get("text") is not None else "bytes"
        await send({"type": "websocket.send", key: message[key]})


async def route_echo(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    subprotocols = scope["subprotocols"]
    await send(
        {"type": "websocket.accept", "subprotocol": subprotocols[-1] if subprotocols else None}
    )
    await echo_until_disconnect(h, receive, send)


async def route_scope(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    shown = {
        key: scope[key] for key in ("type", "asgi", "http_version", "scheme", "path", "root_path")
    }
    shown |= {"raw_path": scope["raw_path"].decode(), "query": scope["query_string"].decode()}
    shown |= {"host": dict(scope["headers"])[b"host"].decode(), "state": scope["state"]}
    shown |= {"extensions": list(scope["extensions"])}
    await send({"type": "websocket.send", "text": json.dumps(shown)})
    await echo_until_disconnect(h, receive, send)


async def route_close(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
    await h.disconnects.put(await receive())


async def route_deny(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.close"})
    await h.disconnects.put(await receive())


async def route_teapot(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    await send(
        {"type": "websocket.http.response.start", "status": 418, "headers": [(b"x-tea", b"yes")]}
    )
    await send({"type": "websocket.http.response.body", "body": b"short and ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"stout"})


async def route_boom_before(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    raise ValueError("boom before accept")


async def route_boom_after(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    raise ValueError("boom after accept")


async def route_misuse(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    try:
        await send({"type": "websocket.accept"})
    except RuntimeError as exc:
        await send({"type": "websocket.send", "text": f"RuntimeError: {exc}"})
    await echo_until_disconnect(h, receive, send)


async def route_slow_reader(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    await h.release.wait()
    received = [(await receive())["text"] for _ in range(50)]
    await send({"type": "websocket.send", "text": ",".join(received)})
    await echo_until_disconnect(h, receive, send)


async def route_count(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    """After `h.release`, receive as many messages as the query says; reply with them joined."""
    await send({"type": "websocket.accept"})
    await h.release.wait()
    received = [(await receive())["text"] for _ in range(int(scope["query_string"]))]
    await send({"type": "websocket.send", "text": ",".join(received)})
    await echo_until_disconnect(h, receive, send)


async def route_flood(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    for index in range(16):
        await send({"type": "websocket.send", "bytes": bytes([index]) * (1 << 20)})
        h.progress.append(index)
    await echo_until_disconnect(h, receive, send)


async def route_return(h: Harness, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["query_string"] == b"accept":
        await send({"type": "websocket.accept"})


ROUTES: dict[str, Route] = {
    "/return": route_return,
    "/close": route_close,
    "/deny": route_deny,
    "/teapot": route_teapot,
    "/boom-before": route_boom_before,
    "/boom-after": route_boom_after,
    "/misuse": route_misuse,
    "/slow-reader": route_slow_reader,
    "/count": route_count,
    "/flood": route_flood,
}


@asynccontextmanager
async def serving(
    settings: WebSocketSettings | None = None, *, root_path: str = "", app: ASGIApp | None = None
) -> AsyncIterator[Harness]:
    loop = asyncio.get_running_loop()
    h = Harness(settings=settings or WebSocketSettings())

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive()) == {"type": "websocket.connect"}
        path = scope["path"].removeprefix(scope["root_path"])
        route = ROUTES.get(path, route_scope if path.startswith("/scope") else route_echo)
        await route(h, scope, receive, send)

    def factory() -> WebSocketProtocol:
        scope_base = {
            "scheme": "ws",
            "server": ("127.0.0.1", h.port),
            "client": ("127.0.0.1", 1),
            "root_path": root_path,
            "state": {"answer": 42},
        }
        protocol = WebSocketProtocol(
            app=app or router,
            settings=h.settings,
            scope_base=scope_base,
            emit=h.events.append,
            on_close=h.finished.append,
            loop=loop,
        )
        h.protocols.append(protocol)
        return protocol

    server = await loop.create_server(factory, "127.0.0.1", 0)
    h.port = server.sockets[0].getsockname()[1]
    try:
        yield h
    finally:
        server.close()
        for protocol in h.protocols:
            protocol.shutdown()
        await asyncio.wait_for(asyncio.gather(*(p.wait_closed() for p in h.protocols)), 5)
        await asyncio.wait_for(server.wait_closed(), 5)


def client(uri: str, **kwargs: Any) -> connect:
    options: dict[str, Any] = {
        "proxy": None,
        "open_timeout": 5,
        "close_timeout": 2,
        "max_size": 4 << 20,
    }
    return connect(uri, **(options | kwargs))


async def assert_echo_works(h: Harness) -> None:
    async with client(h.uri + "/echo") as ws:
        await ws.send("still alive")
        assert await asyncio.wait_for(ws.recv(), 5) == "still alive"


# -- raw sockets ---------------------------------------------------------------------------


def handshake_head(path: str = "/echo", *, extra: bytes = b"") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\n"
        ).encode()
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\n"
        + extra
        + b"\r\n"
    )


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await asyncio.wait_for(reader.readexactly(2), 5)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    return first & 0x0F, await reader.readexactly(length)


@asynccontextmanager
async def raw(
    h: Harness, head: bytes
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
    try:
        writer.write(head)
        response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        yield reader, writer, response
    finally:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 5)


async def read_close(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    opcode, payload = await read_frame(reader)
    assert opcode == 0x8
    (code,) = struct.unpack("!H", payload[:2])
    assert await asyncio.wait_for(reader.read(), 5) == b"", "server must close the TCP connection"
    return code, payload[2:]


# -- tests -----------------------------------------------------------------------------------


def test_handshake_scope_and_echo(run: Run) -> None:
    async def scenario() -> None:
        async with serving(root_path="/mnt") as h, client(h.uri + "/scope%20x?a=1") as ws:
            shown = json.loads(await ws.recv())
            assert shown == {
                "type": "websocket",
                "asgi": {"version": "3.0", "spec_version": "2.4"},
                "http_version": "1.1",
                "scheme": "ws",
                "path": "/mnt/scope x",
                "root_path": "/mnt",
                "raw_path": "/mnt/scope%20x",
                "query": "a=1",
                "host": f"127.0.0.1:{h.port}",
                "state": {"answer": 42},
                "extensions": ["websocket.http.response"],
            }
            for message in ("hello", b"\x00binary\xff"):
                await ws.send(message)
                assert await ws.recv() == message
            await ws.close()
            assert await h.disconnect_code() == 1000
            await wait_until(lambda: len(h.finished) == 1)
            opened, closed = h.events
            assert opened == WebSocketOpened(
                path="/mnt/scope x", client=("127.0.0.1", 1), subprotocol=None
            )
            assert isinstance(closed, WebSocketClosed)
            assert (closed.messages_in, closed.messages_out, closed.close_code) == (2, 3, 1000)

    run(scenario())


@pytest.mark.parametrize("message", [b"\xab" * (1 << 20), "é" * (1 << 19)])
def test_one_mib_message(run: Run, message: str | bytes) -> None:
    async def scenario() -> None:
        async with serving() as h, client(h.uri) as ws:
            await ws.send(message)
            assert await ws.recv() == message

    run(scenario())


def test_fragmented_message_is_reassembled(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h, client(h.uri) as ws:
            await ws.send(["frag", "men", "ted"])
            assert await ws.recv() == "fragmented"

    run(scenario())


def test_client_ping_gets_pong(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h, client(h.uri) as ws:
            latency = await asyncio.wait_for(await ws.ping(b"abc"), 5)
            assert latency >= 0

    run(scenario())


def test_server_pings_and_drops_a_dead_peer(run: Run) -> None:
    async def scenario() -> None:
        settings = WebSocketSettings(ping_interval_s=0.05, ping_timeout_s=0.2)
        async with serving(settings) as h, raw(h, handshake_head()) as (reader, writer, _):
            for _ in range(2):  # answered pings are followed by further pings
                opcode, payload = await read_frame(reader)
                assert opcode == 0x9
                writer.write(ws_frame(0xA, payload))
            assert (await read_frame(reader))[0] == 0x9  # this one goes unanswered
            assert await asyncio.wait_for(reader.read(), 5) == b""
            assert await h.disconnect_code() == 1006

    run(scenario())


def test_server_close_code_and_reason(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h, client(h.uri + "/close") as ws:
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (4001, "bye")
            assert await h.disconnect_code() == 4001

    run(scenario())


def test_client_close_code_reaches_app(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h, client(h.uri) as ws:
            await ws.close(code=4002, reason="done")
            assert await h.disconnect_code() == 4002
            assert ws.close_code == 4002

    run(scenario())


def test_client_drop_gives_app_disconnect_1006(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h:
            reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
            writer.write(handshake_head())
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.transport.abort()
            assert await h.disconnect_code() == 1006
            await wait_until(lambda: len(h.finished) == 1)

    run(scenario())


def test_close_before_accept_is_403(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h:
            with pytest.raises(InvalidStatus) as info:
                async with client(h.uri + "/deny"):
                    pass
            assert info.value.response.status_code == 403
            assert (await asyncio.wait_for(h.disconnects.get(), 5))[
                "type"
            ] == "websocket.disconnect"
            await assert_echo_works(h)

    run(scenario())


def test_custom_denial_response(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h:
            with pytest.raises(InvalidStatus) as info:
                async with client(h.uri + "/teapot"):
                    pass
            response = info.value.response
            assert (response.status_code, response.body) == (418, b"short and stout")
            assert response.headers["x-tea"] == "yes"

    run(scenario())


@pytest.mark.parametrize(("path", "status"), [("/boom-before", 500), ("/boom-after", None)])
def test_app_exception(run: Run, path: str, status: int | None) -> None:
    async def scenario() -> None:
        async with serving() as h:
            if status is not None:
                with pytest.raises(InvalidStatus) as info:
                    async with client(h.uri + path):
                        pass
                assert info.value.response.status_code == status
            else:
                async with client(h.uri + path) as ws:
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.recv()
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == 1011
            await assert_echo_works(h)

    run(scenario())


def test_asgi_misuse_raises_runtime_error_in_app(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h, client(h.uri + "/misuse") as ws:
            reply = await ws.recv()
            assert isinstance(reply, str)
            assert reply.startswith("RuntimeError: unexpected ASGI message 'websocket.accept'")

    run(scenario())


def test_subprotocol_negotiation(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h, client(h.uri, subprotocols=["one", "two"]) as ws:
            assert ws.subprotocol == "two"
            await wait_until(lambda: len(h.events) == 1)
            assert h.events == [
                WebSocketOpened(path="/", client=("127.0.0.1", 1), subprotocol="two")
            ]

    run(scenario())


def test_max_size_closes_1009(run: Run) -> None:
    async def scenario() -> None:
        async with serving(WebSocketSettings(max_size_bytes=1000)) as h, client(h.uri) as ws:
            await ws.send(b"x" * 1000)
            assert await ws.recv() == b"x" * 1000
            await ws.send(b"x" * 1001)
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009
            assert await h.disconnect_code() == 1009
            await assert_echo_works(h)

    run(scenario())


@pytest.mark.parametrize("is_enabled", [True, False])
def test_compression_negotiated(run: Run, is_enabled: bool) -> None:
    async def scenario() -> None:
        async with (
            serving(WebSocketSettings(per_message_deflate=is_enabled)) as h,
            client(h.uri) as ws,
        ):
            assert ws.response is not None
            header = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ("permessage-deflate" in header) is is_enabled
            for _ in range(3):  # context takeover across messages
                await ws.send("compressible " * 1000)
                assert await ws.recv() == "compressible " * 1000

    run(scenario())


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (handshake_head().replace(b"Version: 13", b"Version: 8"), b"426"),
        (handshake_head().replace(b"Sec-WebSocket-Key", b"X-Nothing"), b"400"),
        (handshake_head().replace(b"GET", b"PUT"), b"400"),
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
    ],
    ids=["version", "no-key", "put", "garbage"],
)
def test_invalid_handshake_gets_http_error(run: Run, head: bytes, status: bytes) -> None:
    async def scenario() -> None:
        async with serving() as h:
            async with raw(h, head) as (reader, _, response):
                assert response.startswith(b"HTTP/1.1 " + status)
                assert await asyncio.wait_for(reader.read(), 5) != b"x"  # body, then EOF
            await assert_echo_works(h)

    run(scenario())


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (ws_frame(0x1, b"unmasked", mask=False), 1002),
        (ws_frame(0x1, b"bad \xff\xfe utf-8"), 1007),
        (ws_frame(0x5, b"reserved opcode"), 1002),
        (ws_frame(0x9, b"p" * 126), 1002),
    ],
    ids=["unmasked", "bad-utf8", "reserved-opcode", "control-too-long"],
)
def test_protocol_violation_closes_and_server_survives(run: Run, wire: bytes, code: int) -> None:
    async def scenario() -> None:
        async with serving() as h:
            async with raw(h, handshake_head()) as (reader, writer, response):
                assert response.startswith(b"HTTP/1.1 101")
                writer.write(wire)
                assert (await read_close(reader))[0] == code
            assert await h.disconnect_code() == code
            await assert_echo_works(h)

    run(scenario())


def test_shutdown_closes_with_1012(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h, client(h.uri) as ws:
            await ws.send("ready")
            assert await ws.recv() == "ready"
            h.protocols[0].shutdown()
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1012, "service restart")
            assert await h.disconnect_code() == 1012
            await asyncio.wait_for(h.protocols[0].wait_closed(), 5)

    run(scenario())


def test_read_backpressure_pauses_then_delivers_in_order(run: Run) -> None:
    async def scenario() -> None:
        async with (
            serving(WebSocketSettings(max_queue=4)) as h,
            client(h.uri + "/slow-reader") as ws,
        ):
            for index in range(50):
                await ws.send(str(index))
            transport = h.protocols[0]._transport
            assert transport is not None
            await wait_until(lambda: not transport.is_reading())
            h.release.set()
            assert await ws.recv() == ",".join(str(i) for i in range(50))
            assert transport.is_reading()

    run(scenario())


def test_write_backpressure_blocks_send_until_peer_reads(run: Run) -> None:
    async def scenario() -> None:
        async with serving() as h, raw(h, handshake_head("/flood")) as (reader, _, response):
            assert response.startswith(b"HTTP/1.1 101")
            protocol = h.protocols[0]
            await wait_until(lambda: not protocol._can_write.is_set())
            assert len(h.progress) < 16
            transport = protocol._transport
            assert transport is not None
            assert transport.get_write_buffer_size() <= 2 << 20
            for index in range(16):
                assert await read_big_frame(reader) == (0x2, index, 1 << 20)
            assert h.progress == list(range(16))

    run(scenario())


async def read_big_frame(reader: asyncio.StreamReader) -> tuple[int, int, int]:
    """Read one unmasked frame of any size; return (opcode, first payload byte, length)."""
    first, second = await asyncio.wait_for(reader.readexactly(2), 5)
    length = second & 0x7F
    if length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    elif length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    payload = await asyncio.wait_for(reader.readexactly(length), 5)
    return first & 0x0F, payload[0], length


def test_fastapi_websocket_endpoint(run: Run) -> None:
    api = FastAPI()
    codes: list[int] = []

    @api.websocket("/ws/{name}")
    async def endpoint(websocket: WebSocket, name: str) -> None:
        await websocket.accept(subprotocol="v1")
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(f"{name}:{text}")
        except WebSocketDisconnect as exc:
            codes.append(exc.code)

    async def scenario() -> None:
        async with serving(app=api) as h:
            async with client(h.uri + "/ws/ada", subprotocols=["v1"]) as ws:
                assert ws.subprotocol == "v1"
                await ws.send("hi")
                assert await ws.recv() == "ada:hi"
                await ws.close(code=4005)
            await asyncio.wait_for(h.protocols[0].wait_closed(), 5)
            assert codes == [4005]
            with pytest.raises(InvalidStatus) as info:
                async with client(h.uri + "/nowhere"):
                    pass
            assert info.value.response.status_code == 403

    run(scenario())


@pytest.mark.parametrize(("query", "status"), [("", 500), ("accept", None)])
def test_app_returning_early(run: Run, query: str, status: int | None) -> None:
    async def scenario() -> None:
        async with serving() as h:
            if status is not None:
                with pytest.raises(InvalidStatus) as info:
                    async with client(h.uri + "/return"):
                        pass
                assert info.value.response.status_code == status
            else:
                async with client(h.uri + "/return?accept") as ws:
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.recv()
                    assert closed.value.rcvd is not None
                    assert closed.value.rcvd.code == 1000
            await wait_until(lambda: len(h.finished) == 1)

    run(scenario())


def test_peer_that_never_answers_close_is_dropped(run: Run) -> None:
    async def scenario() -> None:
        settings = WebSocketSettings(close_timeout_s=0.2)
        async with serving(settings) as h, raw(h, handshake_head("/close")) as (reader, _, _):
            opcode, payload = await read_frame(reader)
            assert (opcode, payload) == (0x8, struct.pack("!H", 4001) + b"bye")
            assert await asyncio.wait_for(reader.read(), 5) == b""  # aborted, no echo needed
            await wait_until(lambda: len(h.finished) == 1)

    run(scenario())


def test_deflate_is_negotiated_and_used_for_large_messages_only(run: Run) -> None:
    async def scenario() -> None:
        offer = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
        async with serving() as h, raw(h, handshake_head(extra=offer)) as (reader, writer, head):
            assert b"permessage-deflate" in head.lower()
            inflater = zlib.decompressobj(-15)  # one window for the connection: context takeover
            for text in ("small", "big " * 1000, "small again", "big " * 1000):
                writer.write(ws_frame(0x1, text.encode()))  # a client may send uncompressed too
                first, second = await asyncio.wait_for(reader.readexactly(2), 5)
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                payload = await asyncio.wait_for(reader.readexactly(length), 5)
                if len(text) < 1024:
                    assert (first, payload) == (0x81, text.encode())
                else:
                    assert first == 0xC1, "FIN + RSV1 (compressed) + text"
                    assert len(payload) < 100
                    assert inflater.decompress(payload + b"\x00\x00\xff\xff") == text.encode()

    run(scenario())


def test_a_flood_is_held_to_max_queue_then_delivered_in_order(run: Run) -> None:
    count = 2000

    async def scenario() -> None:
        settings = WebSocketSettings(max_queue=4)
        async with serving(settings) as h, raw(h, handshake_head(f"/count?{count}")) as io:
            reader, writer, response = io
            assert response.startswith(b"HTTP/1.1 101")
            writer.write(b"".join(ws_frame(0x1, str(i).encode()) for i in range(count)))
            protocol = h.protocols[0]
            await wait_until(lambda: protocol._is_reading_paused)
            assert len(protocol._inbox) <= 4, "messages beyond the queue stay unparsed"
            h.release.set()
            opcode, payload = await read_frame(reader)
            assert (opcode, payload.decode()) == (0x1, ",".join(str(i) for i in range(count)))
            assert not protocol._is_reading_paused

    run(scenario())


def test_shutdown_while_reading_is_paused_completes_the_close_handshake(run: Run) -> None:
    async def scenario() -> None:
        settings = WebSocketSettings(max_queue=2, close_timeout_s=60, graceful_timeout_s=0.5)
        async with serving(settings) as h, client(h.uri + "/count?1") as ws:
            for index in range(20):
                await ws.send(str(index))
            protocol = h.protocols[0]
            await wait_until(lambda: protocol._is_reading_paused)
            protocol.shutdown()
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1012
            # The client's close reply is read although the app never drained its queue.
            await wait_until(lambda: protocol._is_transport_lost)

    run(scenario())


@pytest.mark.parametrize(
    "parameters",
    [{"server_max_window_bits": 10}, {"server_no_context_takeover": True}],
    ids=["window-bits-10", "no-context-takeover"],
)
def test_deflate_parameters_the_client_asked_for_are_honoured(
    run: Run, parameters: dict[str, Any]
) -> None:
    # The client inflates with exactly what it negotiated: a 32 KiB window or a window kept
    # across messages on our side would make it fail on the repeats below.
    factory = ClientPerMessageDeflateFactory(**parameters)
    block = base64.b64encode(os.urandom(1500)).decode()  # 2000 characters, incompressible-ish

    async def scenario() -> None:
        async with serving() as h, client(h.uri, compression=None, extensions=[factory]) as ws:
            assert ws.response is not None
            header = ws.response.headers["Sec-WebSocket-Extensions"]
            assert header.startswith("permessage-deflate")
            for message in (block, block + block, "small", block):
                await ws.send(message)
                assert await ws.recv() == message

    run(scenario())
