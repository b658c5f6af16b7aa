"""Pure tests of the sans-IO WebSocket core, driven by a wsproto client and hand-built frames."""

from __future__ import annotations

import os
import random
import struct

import h11
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto import events as ws
from wsproto.extensions import PerMessageDeflate

from devserve.events import WebSocketClosed, WebSocketOpened
from devserve.protocol.websocket import (
    ConnectionClosed,
    ConnectionRequested,
    HandshakeFailed,
    MessageReceived,
    Phase,
    PongReceived,
    WebSocketClosedError,
    WebSocketConnection,
    WebSocketEvent,
    WebSocketUsageError,
)

GOOD_HEAD = (
    b"GET /chat HTTP/1.1\r\nHost: example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Pair:
    """A wsproto client wired to our server core through plain bytes."""

    def __init__(self, *, max_message_bytes: int = 1024, is_deflate_enabled: bool = True) -> None:
        self.client = WSConnection(ConnectionType.CLIENT)
        self.server = WebSocketConnection(
            max_message_bytes=max_message_bytes, is_deflate_enabled=is_deflate_enabled
        )

    def to_server(self, data: bytes) -> list[WebSocketEvent]:
        self.server.receive_data(data)
        return self.server.next_events()

    def client_send(self, event: ws.Event) -> list[WebSocketEvent]:
        return self.to_server(self.client.send(event))

    def to_client(self) -> list[ws.Event]:
        self.client.receive_data(self.server.data_to_send())
        return list(self.client.events())

    def request(self, target: str = "/chat", **kwargs: object) -> ConnectionRequested:
        events = self.client_send(ws.Request(host="example", target=target, **kwargs))  # type: ignore[arg-type]
        assert len(events) == 1
        assert isinstance(events[0], ConnectionRequested)
        return events[0]

    def open(self, **accept: object) -> ws.AcceptConnection:
        self.request(subprotocols=["chat", "superchat"], extensions=[PerMessageDeflate()])
        self.server.send({"type": "websocket.accept", **accept})
        [accepted] = self.to_client()
        assert isinstance(accepted, ws.AcceptConnection)
        return accepted


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    """Serialise one frame by hand, so tests can break the rules wsproto enforces."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([(0x80 if mask else 0) | length])
    else:
        head += bytes([(0x80 if mask else 0) | 126]) + struct.pack("!H", length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def closed_with(pair: Pair, code: int) -> None:
    [event] = pair.to_client()
    assert isinstance(event, ws.CloseConnection)
    assert event.code == code
    assert pair.server.phase is Phase.CLOSED


def test_handshake_builds_scope_parts() -> None:
    pair = Pair()
    requested = pair.request("/a%20b/%C3%A9?x=1&y=2", subprotocols=["chat"])
    assert requested.path == "/a b/é"
    assert requested.raw_path == b"/a%20b/%C3%A9"
    assert requested.query_string == b"x=1&y=2"
    assert (b"host", b"example") in requested.headers
    assert all(name == name.lower() for name, _ in requested.headers)
    assert requested.subprotocols == ("chat",)
    assert pair.server.phase is Phase.CONNECTING


def test_handshake_split_into_single_bytes() -> None:
    server = WebSocketConnection()
    events: list[WebSocketEvent] = []
    for i in range(len(GOOD_HEAD)):
        server.receive_data(GOOD_HEAD[i : i + 1])
        events += server.next_events()
    assert [type(e) for e in events] == [ConnectionRequested]


def test_accept_with_subprotocol_and_headers() -> None:
    pair = Pair()
    accepted = pair.open(subprotocol="superchat", headers=[(b"X-Extra", b"1")])
    assert accepted.subprotocol == "superchat"
    assert (b"x-extra", b"1") in accepted.extra_headers
    assert pair.server.phase is Phase.OPEN


def test_unknown_subprotocol_is_usage_error_and_state_unchanged() -> None:
    pair = Pair()
    pair.request(subprotocols=["chat"])
    with pytest.raises(RuntimeError, match="subprotocol"):
        pair.server.send({"type": "websocket.accept", "subprotocol": "other"})
    pair.server.send({"type": "websocket.accept", "subprotocol": "chat"})
    assert isinstance(pair.to_client()[0], ws.AcceptConnection)


@pytest.mark.parametrize("data", ["héllo", b"\x00\xffbin"])
def test_echo_text_and_binary(data: str | bytes) -> None:
    pair = Pair()
    pair.open()
    message = ws.TextMessage(data=data) if isinstance(data, str) else ws.BytesMessage(data=data)
    assert pair.client_send(message) == [MessageReceived(data=data)]
    key = "text" if isinstance(data, str) else "bytes"
    pair.server.send({"type": "websocket.send", key: data})
    [echoed] = pair.to_client()
    assert isinstance(echoed, ws.TextMessage | ws.BytesMessage)
    assert echoed.data == data


@pytest.mark.parametrize(
    ("cls", "parts"), [(ws.TextMessage, ["ab", "c", "dé"]), (ws.BytesMessage, [b"ab", b"c"])]
)
def test_fragments_are_reassembled(
    cls: type[ws.TextMessage | ws.BytesMessage], parts: list[str] | list[bytes]
) -> None:
    pair = Pair()
    pair.open()
    events: list[WebSocketEvent] = []
    for index, part in enumerate(parts):
        events += pair.client_send(cls(data=part, message_finished=index == len(parts) - 1))  # type: ignore[arg-type]
    joined = "".join(parts) if cls is ws.TextMessage else b"".join(parts)  # type: ignore[arg-type]
    assert events == [MessageReceived(data=joined)]


def test_frames_fed_one_byte_at_a_time() -> None:
    pair = Pair()
    pair.open()
    wire = pair.client.send(ws.TextMessage(data="x" * 300)) + pair.client.send(
        ws.BytesMessage(data=b"y")
    )
    events: list[WebSocketEvent] = []
    for i in range(len(wire)):
        events += pair.to_server(wire[i : i + 1])
    assert events == [MessageReceived("x" * 300), MessageReceived(b"y")]


def test_client_ping_is_answered_and_server_ping_yields_pong() -> None:
    pair = Pair()
    pair.open()
    assert pair.client_send(ws.Ping(payload=b"hi")) == []
    [pong] = pair.to_client()
    assert pong == ws.Pong(payload=b"hi")
    pair.server.ping(b"srv")
    [ping] = pair.to_client()
    assert isinstance(ping, ws.Ping)
    assert pair.client_send(ping.response()) == [PongReceived(payload=b"srv")]


def test_client_close_is_echoed_with_its_code() -> None:
    pair = Pair()
    pair.open()
    assert pair.client_send(ws.CloseConnection(code=4000, reason="bye")) == [
        ConnectionClosed(4000, "bye")
    ]
    closed_with(pair, 4000)
    pair.server.receive_data(b"late bytes are ignored")
    assert pair.server.next_events() == []


def test_client_close_without_code_reports_1005() -> None:
    pair = Pair()
    pair.open()
    assert pair.to_server(frame(0x8, b"")) == [ConnectionClosed(1005, "")]
    assert pair.server.phase is Phase.CLOSED


def test_app_close_waits_for_the_echo() -> None:
    pair = Pair()
    pair.open()
    pair.server.send({"type": "websocket.close", "code": 4001, "reason": "done"})
    assert pair.server.next_events() == [ConnectionClosed(4001, "done")]
    [close] = pair.to_client()
    assert close == ws.CloseConnection(code=4001, reason="done")
    assert pair.server.phase is Phase.CLOSING
    assert pair.to_server(frame(0x1, b"dropped")) == []
    assert pair.client_send(close.response()) == []
    assert pair.server.phase.name == "CLOSED"
    with pytest.raises(RuntimeError):
        pair.server.send({"type": "websocket.send", "text": "x"})


def test_send_after_peer_close_is_oserror_and_close_is_noop() -> None:
    pair = Pair()
    pair.open()
    pair.client_send(ws.CloseConnection(code=1000))
    with pytest.raises(OSError, match="closed"):
        pair.server.send({"type": "websocket.send", "text": "x"})
    with pytest.raises(WebSocketClosedError):
        pair.server.send({"type": "websocket.send", "bytes": b"x"})
    pair.server.send({"type": "websocket.close"})


def test_eof_reports_1006_once() -> None:
    pair = Pair()
    pair.open()
    assert pair.to_server(b"") == [ConnectionClosed(1006, "connection lost")]
    assert pair.to_server(b"") == []
    assert pair.server.phase is Phase.CLOSED


def test_eof_before_accept_then_accept_is_oserror() -> None:
    pair = Pair()
    pair.request()
    assert pair.to_server(b"") == [ConnectionClosed(1006, "connection lost")]
    with pytest.raises(WebSocketClosedError):
        pair.server.send({"type": "websocket.accept"})


@pytest.mark.parametrize("cls", [ws.TextMessage, ws.BytesMessage])
def test_message_over_max_size_closes_1009(cls: type[ws.TextMessage | ws.BytesMessage]) -> None:
    pair = Pair(max_message_bytes=100)
    pair.open()
    data: str | bytes = "é" * 51 if cls is ws.TextMessage else b"x" * 101
    assert pair.client_send(cls(data=data)) == [ConnectionClosed(1009, "message too big")]  # type: ignore[arg-type]
    [close] = pair.to_client()
    assert isinstance(close, ws.CloseConnection)
    assert close.code == 1009


def test_fragmented_message_over_max_size_closes_1009() -> None:
    pair = Pair(max_message_bytes=100)
    pair.open()
    assert pair.client_send(ws.BytesMessage(data=b"x" * 60, message_finished=False)) == []
    assert pair.client_send(ws.BytesMessage(data=b"x" * 60)) == [
        ConnectionClosed(1009, "message too big")
    ]
    assert pair.client_send(ws.BytesMessage(data=b"exactly at the limit is fine" * 0)) == []


def test_message_exactly_at_max_size_is_delivered() -> None:
    pair = Pair(max_message_bytes=100)
    pair.open()
    assert pair.client_send(ws.BytesMessage(data=b"x" * 100)) == [MessageReceived(b"x" * 100)]


def test_close_before_accept_is_http_403() -> None:
    pair = Pair()
    pair.request()
    pair.server.send({"type": "websocket.close"})
    reject = pair.to_client()[0]
    assert isinstance(reject, ws.RejectConnection)
    assert reject.status_code == 403
    assert pair.server.phase is Phase.CLOSED
    assert pair.server.next_events() == [ConnectionClosed(1006, "rejected with 403")]


def test_custom_denial_response() -> None:
    pair = Pair()
    pair.request()
    headers = [(b"content-type", b"text/plain")]
    pair.server.send({"type": "websocket.http.response.start", "status": 418, "headers": headers})
    pair.server.send({"type": "websocket.http.response.body", "body": b"I'm a ", "more_body": True})
    pair.server.send({"type": "websocket.http.response.body", "body": b"teapot"})
    events = pair.to_client()
    assert isinstance(events[0], ws.RejectConnection)
    assert events[0].status_code == 418
    body = b"".join(e.data for e in events[1:] if isinstance(e, ws.RejectData))
    assert body == b"I'm a teapot"
    assert pair.server.phase is Phase.CLOSED
    with pytest.raises(RuntimeError):
        pair.server.send({"type": "websocket.http.response.body", "body": b"more"})


@pytest.mark.parametrize("is_enabled", [True, False])
def test_permessage_deflate_negotiation(is_enabled: bool) -> None:
    pair = Pair(is_deflate_enabled=is_enabled)
    accepted = pair.open()
    assert bool(accepted.extensions) is is_enabled
    wire = pair.client.send(ws.TextMessage(data="z" * 500))
    assert (len(wire) < 100) is is_enabled
    assert pair.to_server(wire) == [MessageReceived("z" * 500)]
    pair.server.send({"type": "websocket.send", "text": "y" * 500})
    assert pair.to_client() == [ws.TextMessage(data="y" * 500)]


def test_early_bytes_after_head_are_delivered_after_accept() -> None:
    client = WSConnection(ConnectionType.CLIENT)
    head = client.send(ws.Request(host="h", target="/"))
    server = WebSocketConnection()
    server.receive_data(head + frame(0x1, b"early"))
    assert [type(e) for e in server.next_events()] == [ConnectionRequested]
    server.send({"type": "websocket.accept"})
    assert server.next_events() == [MessageReceived("early")]


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (frame(0x1, b"unmasked", mask=False), 1002),
        (frame(0x1, b"\xff\xfe bad utf-8"), 1007),
        (frame(0x3, b"reserved opcode"), 1002),
        (frame(0x9, b"p" * 126), 1002),
        (frame(0x9, b"fragmented ping", fin=False), 1002),
        (frame(0x0, b"orphan continuation"), 1002),
        (frame(0x8, struct.pack("!H", 999)), 1002),
        (bytes([0x81 | 0x40, 0x80 | 1, 0, 0, 0, 0, 0x61]), 1002),  # RSV1 without deflate
    ],
    ids=[
        "unmasked",
        "bad-utf8",
        "reserved-opcode",
        "big-control",
        "fragmented-control",
        "orphan-continuation",
        "bad-close-code",
        "rsv1",
    ],
)
def test_protocol_violations_close_instead_of_raising(wire: bytes, code: int) -> None:
    pair = Pair(is_deflate_enabled=False)
    pair.open()
    [event] = pair.to_server(wire)
    assert isinstance(event, ConnectionClosed)
    assert event.code == code
    closed_with(pair, code)


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (GOOD_HEAD.replace(b"Version: 13", b"Version: 12"), 426),
        (GOOD_HEAD.replace(b"Sec-WebSocket-Version: 13\r\n", b""), 400),
        (GOOD_HEAD.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""), 400),
        (GOOD_HEAD.replace(b"GET", b"POST"), 400),
        (GOOD_HEAD.replace(b"Connection: Upgrade", b"Connection: keep-alive"), 400),
        (GOOD_HEAD.replace(b"Upgrade: websocket", b"Upgrade: h2c"), 400),
        (b"GARBAGE\r\n\r\n", 400),
        (GOOD_HEAD.replace(b"Host: example\r\n", b"Bad Header\r\n"), 400),
        (GOOD_HEAD.replace(b"HTTP/1.1\r\nHost: example", b"HTTP/1.0\r\nX: y"), 400),
        (
            GOOD_HEAD.replace(
                b"\r\n\r\n",
                b"\r\nSec-WebSocket-Extensions: permessage-deflate; "
                b"client_max_window_bits=1x\r\n\r\n",
            ),
            400,
        ),
    ],
    ids=[
        "version",
        "no-version",
        "no-key",
        "post",
        "no-connection",
        "upgrade",
        "garbage",
        "bad-header",
        "http10-no-host",
        "bad-deflate-offer",
    ],
)
def test_invalid_handshake_gets_http_error(head: bytes, status: int) -> None:
    server = WebSocketConnection()
    server.receive_data(head)
    [event] = server.next_events()
    assert isinstance(event, HandshakeFailed)
    assert event.status_code == status
    assert server.phase is Phase.CLOSED
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    client.receive_data(server.data_to_send())
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == status


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.send", "text": "before accept"},
        {"type": "websocket.http.response.body", "body": b""},
        {"type": "websocket.nonsense"},
        {"type": "websocket.accept", "subprotocol": 5},
        {"type": "websocket.accept", "headers": [(b"bad name", b"v")]},
        {"type": "websocket.accept", "headers": [("str", "str")]},
        {"type": "websocket.accept", "headers": 5},
        {"type": "websocket.close", "code": 99},
        {"type": "websocket.close", "reason": 5},
        {"type": "websocket.http.response.start", "status": 101},
        {"type": "websocket.http.response.start"},
    ],
)
def test_asgi_misuse_before_accept(message: dict[str, object]) -> None:
    pair = Pair()
    pair.request()
    with pytest.raises(WebSocketUsageError):
        pair.server.send(message)
    assert pair.server.phase is Phase.CONNECTING


@pytest.mark.parametrize(
    "message",
    [
        {"type": "websocket.accept"},
        {"type": "websocket.send"},
        {"type": "websocket.send", "text": "a", "bytes": b"b"},
        {"type": "websocket.send", "text": b"not str"},
        {"type": "websocket.send", "bytes": "not bytes"},
        {"type": "websocket.send", "bytes": 5},
    ],
)
def test_asgi_misuse_after_accept(message: dict[str, object]) -> None:
    pair = Pair()
    pair.open()
    with pytest.raises(RuntimeError):
        pair.server.send(message)
    assert pair.server.phase is Phase.OPEN


def test_terminate_open_connection_closes_with_code() -> None:
    pair = Pair()
    pair.open()
    pair.server.terminate(close_code=1011, status_code=500, reason="boom")
    assert pair.server.next_events() == [ConnectionClosed(1011, "boom")]
    [close] = pair.to_client()
    assert close == ws.CloseConnection(code=1011, reason="boom")
    with pytest.raises(RuntimeError):
        pair.server.send({"type": "websocket.close"})


def test_terminate_before_accept_sends_status() -> None:
    pair = Pair()
    pair.request()
    pair.server.terminate(close_code=1011, status_code=500)
    reject = pair.to_client()[0]
    assert isinstance(reject, ws.RejectConnection)
    assert reject.status_code == 500
    assert pair.server.phase is Phase.CLOSED


def test_terminate_during_denial_finishes_the_body() -> None:
    pair = Pair()
    pair.request()
    pair.server.send({"type": "websocket.http.response.start", "status": 404})
    pair.server.terminate(close_code=1011, status_code=500)
    events = pair.to_client()
    assert isinstance(events[-1], ws.RejectData)
    assert events[-1].body_finished
    assert pair.server.phase is Phase.CLOSED


def test_terminate_before_request_and_after_close_is_quiet() -> None:
    server = WebSocketConnection()
    server.terminate(close_code=1012, status_code=503)
    assert server.data_to_send() == b""
    assert server.next_events() == [ConnectionClosed(1012, "")]
    server.terminate(close_code=1012, status_code=503)
    assert server.next_events() == []


def test_ping_only_when_open() -> None:
    pair = Pair()
    pair.request()
    pair.server.ping(b"x")
    assert pair.server.data_to_send() == b""


def test_dashboard_events_validate() -> None:
    assert WebSocketOpened(path="/", client=("127.0.0.1", 1), subprotocol=None).path == "/"
    closed = WebSocketClosed(
        path="/", duration_ms=1.5, messages_in=1, messages_out=2, close_code=1000
    )
    assert closed.close_code == 1000
    with pytest.raises(ValueError, match="negative"):
        WebSocketClosed(path="/", duration_ms=-1, messages_in=0, messages_out=0, close_code=1000)
    with pytest.raises(ValueError, match="range"):
        ConnectionClosed(code=7)


def test_bad_deflate_offer_is_ignored_when_deflate_is_disabled() -> None:
    server = WebSocketConnection(is_deflate_enabled=False)
    server.receive_data(
        GOOD_HEAD.replace(
            b"\r\n\r\n",
            b"\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=z\r\n\r\n",
        )
    )
    assert [type(e) for e in server.next_events()] == [ConnectionRequested]
    server.send({"type": "websocket.accept"})
    assert server.data_to_send().startswith(b"HTTP/1.1 101 ")


@pytest.mark.parametrize("seed", range(4))
def test_corrupted_input_never_raises(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible fuzzing, not cryptography
    for _ in range(150):
        pair = Pair(max_message_bytes=200, is_deflate_enabled=rng.random() < 0.5)
        pair.open()
        wire = bytearray()
        for _ in range(rng.randrange(1, 5)):
            wire += pair.client.send(ws.TextMessage(data="x" * rng.randrange(300)))
            wire += pair.client.send(ws.Ping(payload=b"p"))
        for _ in range(rng.randrange(4)):
            wire[rng.randrange(len(wire))] = rng.randrange(256)
        for start in range(0, len(wire), 7):
            pair.to_server(bytes(wire[start : start + 7]))
        pair.to_server(b"")
        assert pair.server.phase is Phase.CLOSED
        assert pair.server.close_code is not None


def test_next_events_parses_no_more_messages_than_asked() -> None:
    pair = Pair()
    pair.open()
    wire = b"".join(pair.client.send(ws.TextMessage(data=str(i))) for i in range(5))
    wire += pair.client.send(ws.Ping(payload=b"behind"))
    pair.server.receive_data(wire)
    assert pair.server.next_events(max_messages=2) == [MessageReceived("0"), MessageReceived("1")]
    assert pair.server.is_input_pending
    assert pair.server.next_events(max_messages=0) == []
    assert pair.to_client() == [], "the ping waits behind the held messages, in order"
    assert pair.server.next_events() == [MessageReceived(str(i)) for i in (2, 3, 4)]
    assert not pair.server.is_input_pending
    assert pair.to_client() == [ws.Pong(payload=b"behind")]


def test_held_messages_never_block_the_closing_handshake() -> None:
    pair = Pair()
    pair.open()
    pair.server.receive_data(
        b"".join(pair.client.send(ws.BytesMessage(data=b"x")) for _ in range(3))
    )
    assert pair.server.next_events(max_messages=1) == [MessageReceived(b"x")]
    pair.server.terminate(close_code=1012, status_code=503, reason="service restart")
    [close] = pair.to_client()
    assert isinstance(close, ws.CloseConnection)
    pair.server.receive_data(pair.client.send(close.response()))
    assert pair.server.next_events(max_messages=0) == [ConnectionClosed(1012, "service restart")]
    assert pair.server.phase is Phase.CLOSED
    assert not pair.server.is_input_pending


@pytest.mark.parametrize(("size", "is_compressed"), [(64, False), (4096, True)])
def test_server_messages_are_deflated_from_a_size_up(size: int, is_compressed: bool) -> None:
    pair = Pair(max_message_bytes=1 << 16)
    pair.open()
    pair.server.send({"type": "websocket.send", "text": "t" * size})
    wire = pair.server.data_to_send()
    assert bool(wire[0] & 0x40) is is_compressed  # RSV1: permessage-deflate was applied
    pair.client.receive_data(wire)
    assert list(pair.client.events()) == [ws.TextMessage(data="t" * size)]
