"""asyncio shell around the sans-IO WebSocket core: one protocol object per upgraded connection.

Theory of operation. The HTTP server hands an upgraded transport to `WebSocketProtocol` and
replays the raw request head into `data_received`. Every input (bytes, EOF, an ASGI send
message, a timer) is applied to the pure `WebSocketConnection`, then `_process` drains its
events into the app's inbox and writes its outbound bytes; when the core reaches
`Phase.CLOSED` the transport is closed. The app runs in one task: `receive()` pops the
inbox (``websocket.connect`` first, ``websocket.disconnect`` last, repeated if asked
again), `send()` feeds the core and then waits while the transport's write buffer is over
its high-water mark. Backpressure the other way: the core parses only as many messages as
the inbox has room for (``max_queue``), the rest stays unparsed in its buffer and reading
pauses; once half are consumed the held frames are parsed and, when none are left, reading
resumes. After our close frame, reading resumes at once (data is discarded, only the peer's
close matters). Every wait is bounded: pings every
``ping_interval_s`` and an abort after ``ping_timeout_s`` without a pong, an abort
``close_timeout_s`` after our close frame, and an app still running
``graceful_timeout_s`` after the connection ended is cancelled. The connection is
finished once the transport is gone and the app task is done; then `WebSocketClosed` is
emitted (if it was accepted) and ``on_close(self)`` is called, exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, cast

from devserve.asgi import ASGIApp, Message, Scope
from devserve.events import Event, WebSocketClosed, WebSocketOpened
from devserve.protocol.websocket import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_SERVICE_RESTART,
    ConnectionClosed,
    ConnectionRequested,
    HandshakeFailed,
    MessageReceived,
    Phase,
    PongReceived,
    WebSocketConnection,
    WebSocketEvent,
)
from devserve.wssettings import WebSocketSettings

logger = logging.getLogger("devserve.websocket")

_ASGI_VERSIONS = {"version": "3.0", "spec_version": "2.4"}


def _assert_never(value: NoReturn) -> NoReturn:
    """Make mypy prove a `match` over an event union is exhaustive."""
    raise AssertionError(f"unhandled event: {value!r}")


class WebSocketProtocol(asyncio.Protocol):
    """Serve one WebSocket connection to an ASGI app.

    Args:
        app: the ASGI application.
        settings: limits and timers.
        scope_base: ``scheme``, ``server``, ``client``, ``root_path`` and ``state`` (the
            lifespan state, copied shallowly into this connection's scope).
        emit: receives `WebSocketOpened` and `WebSocketClosed` dashboard events.
        on_close: called once with this protocol when the connection is finished.
        loop: the running event loop.
        clock: monotonic seconds, for ``duration_ms``.
    """

    def __init__(
        self,
        *,
        app: ASGIApp,
        settings: WebSocketSettings,
        scope_base: Mapping[str, Any],
        emit: Callable[[Event], None],
        on_close: Callable[[WebSocketProtocol], None],
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._app = app
        self._settings = settings
        self._scope_base = scope_base
        self._emit = emit
        self._on_close = on_close
        self._loop = loop
        self._clock = clock
        self._core = WebSocketConnection(
            max_message_bytes=settings.max_size_bytes,
            is_deflate_enabled=settings.per_message_deflate,
        )
        self._transport: asyncio.Transport | None = None
        self._is_transport_lost = False
        self._inbox: deque[Message] = deque()
        self._disconnect: Message | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._is_reading_paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._finished = asyncio.Event()
        self._app_task: asyncio.Task[None] | None = None
        self._path = ""
        self._opened_at: float | None = None
        self._messages_in = 0
        self._messages_out = 0
        self._ping: asyncio.TimerHandle | None = None
        self._pong_deadline: asyncio.TimerHandle | None = None
        self._close_deadline: asyncio.TimerHandle | None = None
        self._app_deadline: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport; the upgrade request bytes follow in `data_received`."""
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        """Feed bytes from the peer to the core."""
        self._core.receive_data(data)
        self._process()

    def eof_received(self) -> bool | None:
        """Treat EOF as the end of the connection (the transport then closes itself)."""
        self._core.receive_data(b"")
        self._process()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the app (``websocket.disconnect``, 1006 without a close frame) and clean up."""
        self._is_transport_lost = True
        self._core.receive_data(b"")
        self._process()
        for handle in (self._ping, self._pong_deadline, self._close_deadline):
            if handle is not None:
                handle.cancel()
        self._can_write.set()  # a send() waiting for the buffer to drain must wake up
        if self._app_task is not None and not self._app_task.done():
            self._app_deadline = self._loop.call_later(
                self._settings.graceful_timeout_s, self._app_task.cancel
            )
        self._maybe_finish()

    def pause_writing(self) -> None:
        """The transport's write buffer is over its high-water mark: hold `send()`."""
        self._can_write.clear()

    def resume_writing(self) -> None:
        """The write buffer drained below its low-water mark: release `send()`."""
        self._can_write.set()

    # -- server control -------------------------------------------------------------------

    def shutdown(self) -> None:
        """Close for a server stop or reload: 1012 if open, HTTP 503 before accept.

        Bounded: the peer gets ``close_timeout_s`` to answer, and the app then gets
        ``graceful_timeout_s`` to return before it is cancelled.
        """
        self._core.terminate(
            close_code=CLOSE_SERVICE_RESTART, status_code=503, reason="service restart"
        )
        self._process()

    def abort(self) -> None:
        """Drop the connection now and cancel the app (graceful time is over)."""
        if self._transport is not None:
            self._transport.abort()
        if self._app_task is not None and not self._app_task.done():
            self._app_task.cancel()

    async def wait_closed(self) -> None:
        """Wait until the connection is finished (the caller bounds this wait)."""
        await self._finished.wait()

    # -- core plumbing --------------------------------------------------------------------

    def _process(self) -> None:
        # Parse no more messages than the inbox has room for; the rest waits, unparsed, in
        # the core's buffer (at most one read's worth, as reading is then paused).
        room = self._settings.max_queue - len(self._inbox)
        for event in self._core.next_events(max_messages=max(room, 0)):
            self._handle(event)
        if self._core.is_input_pending:
            self._set_reading_paused(True)
        elif self._is_reading_paused and self._core.phase is Phase.CLOSING:
            self._set_reading_paused(False)  # data after our close frame is discarded anyway
        data = self._core.data_to_send()
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if data:
            transport.write(data)
        if self._core.phase is Phase.CLOSED:
            transport.close()
        elif self._core.phase is Phase.CLOSING and self._close_deadline is None:
            self._close_deadline = self._loop.call_later(
                self._settings.close_timeout_s, transport.abort
            )

    def _handle(self, event: WebSocketEvent) -> None:
        match event:
            case ConnectionRequested():
                scope = self._build_scope(event)
                self._path = scope["path"]
                self._inbox.append({"type": "websocket.connect"})
                task = self._loop.create_task(self._run_app(scope))
                task.add_done_callback(self._on_app_done)
                self._app_task = task
            case MessageReceived(data=data):
                self._messages_in += 1
                key = "text" if isinstance(data, str) else "bytes"
                self._inbox.append({"type": "websocket.receive", key: data})
                if len(self._inbox) >= self._settings.max_queue:
                    self._set_reading_paused(True)
            case PongReceived():
                if self._pong_deadline is not None:
                    self._pong_deadline.cancel()
                    self._pong_deadline = None
                    self._schedule_ping()
            case ConnectionClosed(code=code, reason=reason):
                self._inbox.append({"type": "websocket.disconnect", "code": code, "reason": reason})
            case HandshakeFailed(status_code=status, reason=reason):
                logger.info("WebSocket handshake failed (%d): %s", status, reason)
            case _:
                _assert_never(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _build_scope(self, request: ConnectionRequested) -> Scope:
        base = self._scope_base
        root_path: str = base["root_path"]  # ASGI: path and raw_path include the root path
        return {
            "type": "websocket",
            "asgi": dict(_ASGI_VERSIONS),
            "http_version": "1.1",
            "scheme": base["scheme"],
            "server": base["server"],
            "client": base["client"],
            "root_path": root_path,
            "path": root_path + request.path,
            "raw_path": root_path.encode() + request.raw_path,
            "query_string": request.query_string,
            "headers": list(request.headers),
            "subprotocols": list(request.subprotocols),
            "state": dict(base["state"]),
            "extensions": {"websocket.http.response": {}},
        }

    def _set_reading_paused(self, is_paused: bool) -> None:
        transport = self._transport
        if is_paused is self._is_reading_paused or transport is None or transport.is_closing():
            return
        self._is_reading_paused = is_paused
        if is_paused:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # -- pings ----------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        if self._settings.ping_interval_s is not None and self._core.phase is Phase.OPEN:
            self._ping = self._loop.call_later(self._settings.ping_interval_s, self._send_ping)

    def _send_ping(self) -> None:
        if self._core.phase is not Phase.OPEN:
            return
        self._core.ping(b"devserve")
        self._process()
        self._pong_deadline = self._loop.call_later(
            self._settings.ping_timeout_s, self._on_pong_timeout
        )

    def _on_pong_timeout(self) -> None:
        if self._is_reading_paused:  # the pong may be waiting behind unread messages
            self._pong_deadline = self._loop.call_later(
                self._settings.ping_timeout_s, self._on_pong_timeout
            )
        elif self._transport is not None:
            logger.info("WebSocket peer on %s did not answer a ping; dropping it", self._path)
            self._transport.abort()

    # -- the ASGI app ---------------------------------------------------------------------

    async def _receive(self) -> Message:
        while not self._inbox:
            if self._disconnect is not None:
                return dict(self._disconnect)
            self._waiter = self._loop.create_future()
            await self._waiter
        message = self._inbox.popleft()
        if self._is_reading_paused and len(self._inbox) <= self._settings.max_queue // 2:
            self._process()  # first the messages held back in the core's buffer
            if not self._core.is_input_pending and len(self._inbox) < self._settings.max_queue:
                self._set_reading_paused(False)
        if message["type"] == "websocket.disconnect":
            self._disconnect = message
        return message

    async def _send(self, message: Message) -> None:
        self._core.send(message)  # WebSocketUsageError / WebSocketClosedError reach the app
        kind = message["type"]
        if kind == "websocket.accept":
            self._opened_at = self._clock()
            client = self._scope_base["client"]
            self._emit(WebSocketOpened(self._path, client, message.get("subprotocol")))
            self._schedule_ping()
        elif kind == "websocket.send":
            self._messages_out += 1
        self._process()
        if not self._can_write.is_set():
            await self._can_write.wait()

    async def _run_app(self, scope: Scope) -> None:
        try:
            await self._app(scope, self._receive, self._send)
        except Exception:  # the one broad catch: the app boundary
            logger.exception("Exception in ASGI WebSocket application (%s)", self._path)
            self._core.terminate(
                close_code=CLOSE_INTERNAL_ERROR, status_code=500, reason="internal error"
            )
        else:
            if self._core.phase is Phase.CONNECTING:
                logger.error("ASGI app returned without accepting or closing the WebSocket")
            self._core.terminate(close_code=CLOSE_NORMAL, status_code=500)
        self._process()

    def _on_app_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("WebSocket task failed", exc_info=task.exception())
        if self._app_deadline is not None:
            self._app_deadline.cancel()
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if not self._is_transport_lost or self._finished.is_set():
            return
        if self._app_task is not None and not self._app_task.done():
            return
        self._finished.set()
        if self._opened_at is not None:
            self._emit(
                WebSocketClosed(
                    path=self._path,
                    duration_ms=(self._clock() - self._opened_at) * 1000.0,
                    messages_in=self._messages_in,
                    messages_out=self._messages_out,
                    close_code=self._core.close_code or CLOSE_NORMAL,
                )
            )
        self._on_close(self)
