"""Sans-IO WebSocket core: upgrade handshake and frames <-> ASGI websocket messages.

Theory of operation. A `WebSocketConnection` is fed peer bytes by `receive_data` (``b""`` is
EOF, as in h11), yields past-tense events from `next_events`, applies ASGI send messages in
`send`, and queues every byte to write for `data_to_send`; it never reads a clock, awaits or
touches a socket. Our own h11 server connection parses the upgrade request (so the scope
sees every header, Host included); wsproto then validates it, builds the 101/HTTP
responses and, after accept, parses every frame and frames the control frames; the app's
data messages are framed by `wsframes.DataFrameEncoder` (the hot path). `next_events` can
stop after a number of messages, leaving the rest unparsed and in order in wsproto's
buffer, so a shell can bound its queue. Two Enum machines run side by side:
`Phase` for the wire (HANDSHAKE -> CONNECTING -> OPEN -> CLOSING -> CLOSED, or CONNECTING ->
REJECTING -> CLOSED for an HTTP denial; CLOSED means "close the transport") and `AppState`
for the ASGI message order (the `_APP_TRANSITIONS` table). A message the table refuses raises
`WebSocketUsageError` (a RuntimeError); a legal one the wire can no longer carry raises
`WebSocketClosedError` (an OSError). Peer input never raises: a bad handshake gets a 400
(426 for an unknown version), frame violations close with 1002 or 1007 (bad UTF-8), a
message over ``max_message_bytes`` closes with 1009, pings are answered here, and
`ConnectionClosed` is yielded exactly once with the code the app should see.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import h11
from wsproto import ConnectionType, WSConnection
from wsproto import events as ws
from wsproto.connection import ConnectionState
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from devserve.asgi import Message
from devserve.errors import DevserveError
from devserve.protocol.wsframes import DataFrameEncoder

CLOSE_NORMAL = 1000
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_ABNORMAL = 1006
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_MIN_CLOSE_CODE, _MAX_CLOSE_CODE = 1000, 4999
_Headers = list[tuple[bytes, bytes]]


class WebSocketUsageError(DevserveError, RuntimeError):
    """The application sent an ASGI message that is not legal at this point."""


class WebSocketClosedError(DevserveError, OSError):
    """The application sent a legal message but the connection can no longer carry it."""


class Phase(enum.Enum):
    """Where the wire is: handshake, open, closing, or finished (close the transport)."""

    HANDSHAKE = "waiting for the upgrade request"
    CONNECTING = "upgrade request parsed, waiting for the app's decision"
    OPEN = "accepted, frames flow both ways"
    REJECTING = "HTTP denial response started, body pending"
    CLOSING = "our close frame sent, waiting for the peer's"
    CLOSED = "finished; the transport should be closed"


class AppState(enum.Enum):
    """Where the application is in the ASGI websocket message sequence."""

    CONNECTING = "may accept, close or start an HTTP response"
    ACCEPTED = "may send messages or close"
    RESPONDING = "may send HTTP response body"
    FINISHED = "may send nothing more"


_APP_TRANSITIONS: dict[tuple[AppState, str], AppState] = {
    (AppState.CONNECTING, "websocket.accept"): AppState.ACCEPTED,
    (AppState.CONNECTING, "websocket.close"): AppState.FINISHED,
    (AppState.CONNECTING, "websocket.http.response.start"): AppState.RESPONDING,
    (AppState.ACCEPTED, "websocket.send"): AppState.ACCEPTED,
    (AppState.ACCEPTED, "websocket.close"): AppState.FINISHED,
    (AppState.RESPONDING, "websocket.http.response.body"): AppState.RESPONDING,
}


@dataclass(frozen=True)
class ConnectionRequested:
    """A valid upgrade request arrived; the parts of the ASGI scope it determines."""

    path: str
    raw_path: bytes
    query_string: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    subprotocols: tuple[str, ...]


@dataclass(frozen=True)
class MessageReceived:
    """A complete (reassembled) text or binary message arrived."""

    data: str | bytes


@dataclass(frozen=True)
class PongReceived:
    """The peer answered a ping."""

    payload: bytes


@dataclass(frozen=True)
class ConnectionClosed:
    """The connection ended (peer close, protocol failure, 1009, server close or EOF)."""

    code: int
    reason: str = ""

    def __post_init__(self) -> None:
        if not _MIN_CLOSE_CODE <= self.code <= _MAX_CLOSE_CODE:
            raise ValueError(f"close code out of range: {self.code}")


@dataclass(frozen=True)
class HandshakeFailed:
    """The upgrade request was invalid and an HTTP error response was produced."""

    status_code: int
    reason: str


WebSocketEvent = (
    ConnectionRequested | MessageReceived | PongReceived | ConnectionClosed | HandshakeFailed
)


def _coerce_headers(value: object) -> _Headers:
    """Validate ASGI ``headers`` (an iterable of byte pairs); raise `WebSocketUsageError`."""
    if not isinstance(value, Iterable):
        raise WebSocketUsageError("headers must be an iterable of [name, value] byte pairs")
    headers: _Headers = []
    for pair in value:
        name, header_value = pair
        if not isinstance(name, bytes) or not isinstance(header_value, bytes):
            raise WebSocketUsageError(f"header name and value must be bytes: {pair!r}")
        headers.append((name.lower(), header_value))
    return headers


def _as_bytes(value: object, key: str) -> bytes:
    """Return ``value`` as bytes, or raise `WebSocketUsageError` naming the message ``key``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise WebSocketUsageError(f"{key!r} must be bytes, not {type(value).__name__}")
    return bytes(value)


def _is_deflate_offer_valid(offers: Iterable[object]) -> bool:
    """Whether wsproto can parse every permessage-deflate offer (it raises on bad numbers)."""
    try:
        for offer in offers:
            if str(offer).split(";", 1)[0].strip() == PerMessageDeflate.name:
                PerMessageDeflate().accept(str(offer))
    except ValueError:
        return False
    return True


class WebSocketConnection:
    """One server-side WebSocket connection, from upgrade request to close, without I/O.

    Args:
        max_message_bytes: largest reassembled message accepted; larger closes with 1009.
        is_deflate_enabled: offer permessage-deflate when the client asks for it.
    """

    def __init__(
        self, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, is_deflate_enabled: bool = True
    ) -> None:
        self._max_message_bytes = max_message_bytes
        self._is_deflate_enabled = is_deflate_enabled
        self._h11 = h11.Connection(h11.SERVER)
        self._ws = WSConnection(ConnectionType.SERVER)
        self._phase = Phase.HANDSHAKE
        self._app_state = AppState.CONNECTING
        self._events: list[WebSocketEvent] = []
        # Frames may wait unparsed in wsproto's buffer: after new input, or when the last
        # `next_events` stopped at its message limit. Sending never re-scans the buffer.
        self._has_new_input = False
        self._out = bytearray()
        self._early = bytearray()  # bytes after the request head, held until accept
        self._text: list[str] = []
        self._binary = bytearray()
        self._message_bytes = 0
        self._close_code: int | None = None
        self._request: h11.Request | None = None
        self._encoder = DataFrameEncoder(None)  # replaced on accept, once deflate is settled

    @property
    def phase(self) -> Phase:
        """The wire state; `Phase.CLOSED` means the transport should be closed."""
        return self._phase

    @property
    def close_code(self) -> int | None:
        """The code carried by the `ConnectionClosed` event, once there was one."""
        return self._close_code

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer (``b""`` for EOF). Never raises on bad peer input."""
        if self._phase is Phase.CLOSED:
            return
        if not data:
            self._finish(CLOSE_ABNORMAL, "connection lost")
        elif self._phase is Phase.HANDSHAKE:
            self._h11.receive_data(data)
            self._receive_request_head()
        elif self._ws.connection is None:
            self._early += data
            if len(self._early) > self._max_message_bytes:
                self._finish(CLOSE_MESSAGE_TOO_BIG, "too much data before accept")
        else:
            self._has_new_input = True
            self._ws.receive_data(data)

    @property
    def is_input_pending(self) -> bool:
        """Whether received bytes may hold frames `next_events` has not parsed yet."""
        return self._has_new_input and self._phase in (Phase.OPEN, Phase.CLOSING)

    def next_events(self, max_messages: int | None = None) -> list[WebSocketEvent]:
        """Return and forget every event produced since the last call, oldest first.

        Args:
            max_messages: parse frames only until this many `MessageReceived` events were
                produced (0: parse none); the rest of the input waits in the buffer, in
                order, for a later call (see `is_input_pending`). None: no limit.
        """
        if (
            self._has_new_input
            and self._ws.connection is not None
            and self._phase in (Phase.OPEN, Phase.CLOSING)
        ):
            self._has_new_input = not self._drain_frames(max_messages)
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> bytes:
        """Return and forget every byte waiting to be written to the peer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def send(self, message: Message) -> None:
        """Apply one ASGI websocket send message; its bytes go to `data_to_send`.

        Raises:
            WebSocketUsageError: the message is malformed or illegal in the current state.
            WebSocketClosedError: the connection is gone (``websocket.close`` is then a no-op).
        """
        kind = str(message.get("type"))
        next_state = _APP_TRANSITIONS.get((self._app_state, kind))
        if next_state is None:
            raise WebSocketUsageError(
                f"unexpected ASGI message {kind!r} in app state {self._app_state.name}"
            )
        if self._phase in (Phase.CLOSING, Phase.CLOSED) and kind != "websocket.close":
            raise WebSocketClosedError(f"cannot send {kind!r}: the WebSocket is closed")
        try:
            self._dispatch(kind, message)
        except (LocalProtocolError, h11.LocalProtocolError, KeyError, TypeError, ValueError) as exc:
            raise WebSocketUsageError(f"invalid {kind!r} message: {exc}") from exc
        self._app_state = next_state
        if kind == "websocket.http.response.body" and not message.get("more_body", False):
            self._app_state = AppState.FINISHED

    def ping(self, payload: bytes) -> None:
        """Queue a ping frame, if the connection is open."""
        if self._phase is Phase.OPEN:
            self._out += self._ws.send(ws.Ping(payload=payload))

    def terminate(self, *, close_code: int, status_code: int, reason: str = "") -> None:
        """End the connection on the server's behalf (app crashed, server shutting down).

        Sends a close frame when open, an HTTP ``status_code`` response before accept, ends
        a started denial body, and yields `ConnectionClosed(close_code)` if none was yet.
        """
        if self._phase is Phase.OPEN:
            self._start_close(close_code, reason)
        elif self._phase in (Phase.HANDSHAKE, Phase.CONNECTING):
            if self._phase is Phase.CONNECTING:
                self._out += self._ws.send(ws.RejectConnection(status_code=status_code))
            self._finish(close_code, reason)
        elif self._phase is Phase.REJECTING:
            # If the app declared a longer Content-Length, h11 refuses; the peer sees it short.
            with contextlib.suppress(h11.LocalProtocolError):
                self._out += self._ws.send(ws.RejectData(data=b"", body_finished=True))
            self._finish(close_code, reason)
        self._app_state = AppState.FINISHED

    # -- receiving ------------------------------------------------------------------------

    def _receive_request_head(self) -> None:
        try:
            while True:
                event = self._h11.next_event()
                if isinstance(event, h11.Request):
                    self._request = event
                elif isinstance(event, h11.EndOfMessage) and self._request is not None:
                    self._on_request(self._request)
                    return
                elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                    return
        except h11.RemoteProtocolError as exc:
            self._fail_handshake(exc.error_status_hint, [], f"bad HTTP request: {exc}")

    def _on_request(self, request: h11.Request) -> None:
        self._early += self._h11.trailing_data[0]
        if request.method != b"GET":
            self._fail_handshake(400, [], "WebSocket upgrade requests must use GET")
            return
        headers = list(request.headers)
        try:
            self._ws.initiate_upgrade_connection(headers, request.target)
            upgrade = next(e for e in self._ws.events() if isinstance(e, ws.Request))
        except RemoteProtocolError as exc:
            hint = exc.event_hint
            if not isinstance(hint, ws.RejectConnection):
                hint = ws.RejectConnection()
            self._fail_handshake(hint.status_code, list(hint.headers), str(exc))
            return
        except (h11.ProtocolError, LocalProtocolError, UnicodeError, StopIteration) as exc:
            self._fail_handshake(400, [], f"invalid upgrade request: {exc!r}")
            return
        if self._is_deflate_enabled and not _is_deflate_offer_valid(upgrade.extensions):
            self._fail_handshake(400, [], "malformed permessage-deflate offer")
            return
        raw_path, _, query = request.target.partition(b"?")
        self._phase = Phase.CONNECTING
        self._events.append(
            ConnectionRequested(
                path=unquote(raw_path.decode("ascii"), errors="replace"),
                raw_path=raw_path,
                query_string=query,
                headers=tuple(headers),
                subprotocols=tuple(upgrade.subprotocols),
            )
        )

    def _fail_handshake(self, status_code: int, headers: _Headers, reason: str) -> None:
        body = f"Invalid WebSocket handshake: {reason}\n".encode()
        headers += [(b"content-length", b"%d" % len(body)), (b"connection", b"close")]
        for event in (h11.Response(status_code=status_code, headers=headers), h11.Data(data=body)):
            self._out += self._h11.send(event) or b""
        self._out += self._h11.send(h11.EndOfMessage()) or b""
        self._events.append(HandshakeFailed(status_code=status_code, reason=reason))
        self._phase = Phase.CLOSED

    def _drain_frames(self, max_messages: int | None) -> bool:
        """Parse buffered frames; return False if it stopped at ``max_messages`` messages."""
        budget = -1 if max_messages is None else max_messages
        if budget == 0 and self._phase is Phase.OPEN:  # once closing, data is discarded
            return False
        for event in self._ws.events():
            if isinstance(event, ws.TextMessage | ws.BytesMessage):
                if self._on_data(event):
                    budget -= 1
                    if budget == 0:
                        return False  # wsproto keeps the unparsed rest of its buffer
            elif isinstance(event, ws.Ping) and self._phase is Phase.OPEN:
                self._out += self._ws.send(event.response())
            elif isinstance(event, ws.Pong):
                self._events.append(PongReceived(payload=bytes(event.payload)))
            elif isinstance(event, ws.CloseConnection):
                self._on_close_frame(event)
                break
        return True

    def _on_data(self, event: ws.TextMessage | ws.BytesMessage) -> bool:
        """Add a data frame to the message; return True if a `MessageReceived` was produced."""
        if self._phase is not Phase.OPEN:
            return False  # after we started closing, further data is discarded
        data = event.data
        if isinstance(data, str):  # ASCII text is as long in UTF-8 as in characters
            self._message_bytes += len(data) if data.isascii() else len(data.encode("utf-8"))
        else:
            self._message_bytes += len(data)
        if self._message_bytes > self._max_message_bytes:
            self._reset_message()
            self._start_close(CLOSE_MESSAGE_TOO_BIG, "message too big")
            return False
        if not event.message_finished:
            if isinstance(data, str):
                self._text.append(data)
            else:
                self._binary += data
            return False
        if self._text or self._binary:  # the last fragment of a fragmented message
            if isinstance(data, str):
                self._text.append(data)
                whole: str | bytes = "".join(self._text)
            else:
                self._binary += data
                whole = bytes(self._binary)
            self._reset_message()
            self._events.append(MessageReceived(data=whole))
        else:  # a whole message in one frame, the common case: no extra copy
            self._message_bytes = 0
            self._events.append(
                MessageReceived(data=data if isinstance(data, str) else bytes(data))
            )
        return True

    def _reset_message(self) -> None:
        self._text.clear()
        self._binary.clear()
        self._message_bytes = 0

    def _on_close_frame(self, event: ws.CloseConnection) -> None:
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:  # peer-initiated: echo its code
            self._out += self._ws.send(event.response())
        elif state is ConnectionState.OPEN:  # wsproto turned a ParseFailed into this event
            self._out += self._ws.send(ws.CloseConnection(code=event.code, reason=event.reason))
        self._finish(event.code, event.reason or "")

    # -- sending --------------------------------------------------------------------------

    def _dispatch(self, kind: str, message: Message) -> None:
        if kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.send":
            self._send_data(message)
        elif kind == "websocket.close":
            self._app_close(message)
        elif kind == "websocket.http.response.start":
            headers = _coerce_headers(message.get("headers", []))
            status = message["status"]
            h11.Response(status_code=status, headers=headers)  # validates before sending
            self._out += self._ws.send(
                ws.RejectConnection(status_code=status, headers=headers, has_body=True)
            )
            self._phase = Phase.REJECTING
        else:  # "websocket.http.response.body": the table admits nothing else
            more_body = bool(message.get("more_body", False))
            body = _as_bytes(message.get("body", b""), "body")
            self._out += self._ws.send(ws.RejectData(data=body, body_finished=not more_body))
            if not more_body:
                self._phase = Phase.CLOSED

    def _accept(self, message: Message) -> None:
        subprotocol: Any = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise WebSocketUsageError("subprotocol must be a str or None")
        headers = _coerce_headers(message.get("headers", []))
        h11.InformationalResponse(status_code=101, headers=headers)  # validates first
        deflate = PerMessageDeflate()
        extensions: list[Extension] = [deflate] if self._is_deflate_enabled else []
        event = ws.AcceptConnection(
            subprotocol=subprotocol, extensions=extensions, extra_headers=headers
        )
        self._out += self._ws.send(event)
        # wsproto enables the extension only if the client offered it and the offer parsed.
        self._encoder = DataFrameEncoder(deflate if deflate.enabled() else None)
        self._phase = Phase.OPEN
        early, self._early = bytes(self._early), bytearray()
        if early:
            self._has_new_input = True
            self._ws.receive_data(early)

    def _send_data(self, message: Message) -> None:
        text, data = message.get("text"), message.get("bytes")
        if (text is None) == (data is None):
            raise WebSocketUsageError("websocket.send needs exactly one of 'text' and 'bytes'")
        if text is not None:
            if not isinstance(text, str):
                raise WebSocketUsageError("websocket.send 'text' must be str")
            self._out += self._encoder.encode(text)
        else:
            self._out += self._encoder.encode(_as_bytes(data, "bytes"))

    def _app_close(self, message: Message) -> None:
        code = message.get("code", CLOSE_NORMAL)
        reason = message.get("reason") or ""
        if not isinstance(code, int) or not _MIN_CLOSE_CODE <= code <= _MAX_CLOSE_CODE:
            raise WebSocketUsageError(f"close code must be an int in 1000..4999: {code!r}")
        if not isinstance(reason, str):
            raise WebSocketUsageError("close reason must be a str")
        if self._phase is Phase.CONNECTING:
            self._out += self._ws.send(ws.RejectConnection(status_code=403))
            self._finish(CLOSE_ABNORMAL, "rejected with 403")
        elif self._phase is Phase.OPEN:
            self._start_close(code, reason)

    def _start_close(self, code: int, reason: str) -> None:
        self._out += self._ws.send(ws.CloseConnection(code=code, reason=reason))
        self._phase = Phase.CLOSING
        self._emit_closed(code, reason)

    def _finish(self, code: int, reason: str) -> None:
        self._phase = Phase.CLOSED
        self._emit_closed(code, reason)

    def _emit_closed(self, code: int, reason: str) -> None:
        if self._close_code is None:
            self._close_code = code
            self._events.append(ConnectionClosed(code=code, reason=reason))
