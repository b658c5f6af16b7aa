"""The asyncio shell of the HTTP/1.1 server: transport <-> h11 <-> ASGI.

One `HttpProtocol` per connection parses requests with an ``h11.Connection`` (plus the checks
in `devserve.protocol.http11`) and runs one `devserve.cycle.RequestCycle` at a time, whose
responses are framed by `devserve.protocol.http11.ResponseWriter`. Pipelined requests stay
buffered in h11 (which reports ``PAUSED``) until the current response is complete; the next
cycle starts on a fresh h11 connection fed the leftover bytes, so they are answered in order.

Timers, per connection, one at a time:

* **idle**: a kept-alive connection with no new bytes for ``timeout_keep_alive_s`` closes.
* **head**: from the connection opening, or from the first byte after going idle, the
  whole request head must arrive within ``timeout_request_head_s`` (trickling does not
  extend it): otherwise 408 and close (or a silent close if nothing arrived).
* **body**: while the app waits in ``receive()`` for body bytes that do not come within
  ``timeout_request_body_s``: 408 (if nothing was sent yet) and close.

Flow control: buffered request body bytes beyond a high-water mark pause reading until the
app consumes them; ``send()`` waits while the transport's write buffer is above its high-water
mark, so a slow reader of a huge response does not grow memory.

Draining (graceful shutdown or a reload) lets idle kept-alive connections linger briefly
(a request may already be on the wire) and answers requests with ``connection: close``.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import h11

from devserve.cycle import RequestCycle
from devserve.events import Event
from devserve.protocol.http11 import (
    REASONS,
    ProtocolFailed,
    ResponseHeaders,
    build_error_response,
    check_framing,
    check_head,
    header_pairs,
    wants_close,
)

#: ``create_task(..., context=)`` (Python 3.11; uvloop too) saves a second context copy.
_HAS_TASK_CONTEXT = sys.version_info >= (3, 11)

if TYPE_CHECKING:
    from devserve.asgi import ASGIApp
    from devserve.config import Config
    from devserve.forwarded import TrustedProxies
    from devserve.websocket_server import WebSocketProtocol
    from devserve.wssettings import WebSocketSettings

#: How long an idle kept-alive connection stays open once draining began.
DRAIN_LINGER_S = 0.5
_ASGI_VERSIONS = {"version": "3.0", "spec_version": "2.4"}

Emit = Callable[[Event], None]


class ServerContext:
    """State shared by every connection of one worker.

    Args:
        app: the ASGI application.
        config: the validated configuration.
        emit: where request and error events go (None: nowhere).
        state: the lifespan state, copied shallowly into each request scope.
        proxies: which peers may set ``X-Forwarded-*``.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Config,
        *,
        emit: Emit | None,
        state: dict[str, Any],
        proxies: TrustedProxies | None,
    ) -> None:
        self.app = app
        self.config = config
        self.emit = emit
        self.state = state
        self.proxies = proxies
        self.connections: set[HttpProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.is_draining = False
        self.all_closed = asyncio.Event()
        self.all_closed.set()
        self.response_headers = ResponseHeaders(
            [(k.encode(), v.encode()) for k, v in config.headers],
            server_header=config.server_header,
        )
        self.websocket_settings: WebSocketSettings | None = None
        #: Renders the 500 for an exception (dev mode): (content type, body), None for plain.
        self.error_page: (
            Callable[[BaseException, dict[str, Any]], tuple[bytes, bytes] | None] | None
        ) = None
        self.websockets: set[WebSocketProtocol] = set()
        self._date_second = 0
        self._date = b""

    def date_header(self) -> bytes | None:
        """The ``date`` header value, formatted at most once a second."""
        if not self.config.date_header:
            return None
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = formatdate(now, usegmt=True).encode()
        return self._date

    def add(self, connection: HttpProtocol) -> None:
        """Register an open connection."""
        self.connections.add(connection)
        self.all_closed.clear()

    def discard(self, connection: HttpProtocol | WebSocketProtocol) -> None:
        """Forget a closed connection."""
        if isinstance(connection, HttpProtocol):
            self.connections.discard(connection)
        else:
            self.websockets.discard(connection)
        if not self.connections and not self.websockets:
            self.all_closed.set()

    def drain(self) -> None:
        """Begin draining: idle and busy HTTP connections, and WebSockets.

        Idle connections linger briefly (see `HttpProtocol.drain`), busy ones close after
        their response, WebSockets with 1012 (service restart) so clients reconnect.
        """
        self.is_draining = True
        linger_s = min(DRAIN_LINGER_S, self.config.graceful_s / 2)
        for connection in list(self.connections):
            connection.drain(linger_s)
        for websocket in list(self.websockets):
            websocket.shutdown()

    def abort_all(self) -> None:
        """Close every connection immediately and cancel running app tasks."""
        for connection in list(self.connections):
            connection.abort()
        for websocket in list(self.websockets):
            websocket.abort()
        for task in list(self.tasks):
            task.cancel()


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.loop = asyncio.get_running_loop()
        config = ctx.config
        self.conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=config.h11_max_incomplete_event_size
        )
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set in connection_made
        self.cycle: RequestCycle | None = None
        self.base_context = contextvars.Context()
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int | None] | None = None
        self.scheme = "https" if config.is_tls else "http"
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        self.deadline_action: Callable[[], None] | None = None
        self.is_peer_trusted_proxy = False
        self.is_waiting_head_bytes = True  # head timer armed from open
        self.is_read_paused = False
        self.write_paused: asyncio.Future[None] | None = None
        self.is_closed = False

    # -- asyncio callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        # Every request starts from a copy of this context, not of whatever task happens to
        # start it (the previous request's, for a pipelined one): context variables the app
        # set (asgiref's sync/async bridges do, for Django and WsgiToAsgi) must not leak.
        self.base_context = contextvars.copy_context()
        self.client = _address(transport.get_extra_info("peername"))
        self.server = _address(transport.get_extra_info("sockname"))
        proxies = self.ctx.proxies
        if proxies is not None and self.client is not None:
            self.is_peer_trusted_proxy = proxies.is_trusted(self.client[0])
        self.ctx.add(self)
        self._arm(self.ctx.config.timeout_request_head_s, self._on_head_timeout)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        if self.cycle is None and not self.is_waiting_head_bytes:
            # First bytes after going idle: the head clock starts now.
            self.is_waiting_head_bytes = True
            self._arm(self.ctx.config.timeout_request_head_s, self._on_head_timeout)
        self.conn.receive_data(data)
        self._handle_events()

    def eof_received(self) -> bool | None:  # noqa: D102
        self.conn.receive_data(b"")
        self._handle_events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self.is_closed = True
        self._stop_timer()
        self.ctx.discard(self)
        if self.cycle is not None:
            self.cycle.on_disconnect()
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)

    def pause_writing(self) -> None:  # noqa: D102
        if self.write_paused is None or self.write_paused.done():
            self.write_paused = self.loop.create_future()

    def resume_writing(self) -> None:  # noqa: D102
        if self.write_paused is not None and not self.write_paused.done():
            self.write_paused.set_result(None)

    # -- event handling ------------------------------------------------------------------

    def _handle_events(self) -> None:
        conn = self.conn
        # `_next_cycle` swaps in a fresh h11 connection and handles it itself: this loop
        # must not go on asking the old one (it would answer PAUSED and stall reading).
        while not self.is_closed and self.conn is conn:
            if conn.their_state is h11.IDLE:
                config = self.ctx.config
                failure = check_head(
                    conn.trailing_data[0],
                    config.max_header_count,
                    config.h11_max_incomplete_event_size,
                )
                if failure is not None:
                    self.fail(failure)
                    return
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.fail(ProtocolFailed(exc.error_status_hint, str(exc)))
                return
            kind = type(event)
            if kind is h11.Request:
                self._on_request(event)  # type: ignore[arg-type]  # narrowed by kind
            elif kind is h11.Data or kind is h11.EndOfMessage:
                self._on_body_event(event)  # type: ignore[arg-type]  # narrowed by kind
            elif event is h11.NEED_DATA:
                return
            elif event is h11.PAUSED:
                self.pause_reading()
                return
            else:  # ConnectionClosed
                self.transport.close()
                return

    def _on_body_event(self, event: h11.Data | h11.EndOfMessage) -> None:
        cycle = self.cycle
        if cycle is None:
            return
        if isinstance(event, h11.Data):
            cycle.on_body(event.data)
            return
        cycle.on_body_end()
        if cycle.is_complete:
            self._next_cycle(cycle)

    def _on_request(self, event: h11.Request) -> None:
        self._cancel_timer()
        self.is_waiting_head_bytes = False
        headers = header_pairs(event.headers)
        failure = check_framing(headers)
        if failure is not None:
            self.fail(failure)
            return
        ctx = self.ctx
        if ctx.config.limit_concurrency is not None and (
            len(ctx.tasks) >= ctx.config.limit_concurrency
        ):
            self.fail(ProtocolFailed(503, "server is at its concurrency limit"))
            return
        if ctx.websocket_settings is not None and _is_websocket_upgrade(headers):
            self._switch_to_websocket(event, headers)
            return
        scope = self._build_scope(event, headers)
        cycle = RequestCycle(
            self, scope, is_close_requested=wants_close(event.http_version, headers)
        )
        self.cycle = cycle
        if _HAS_TASK_CONTEXT:
            task = self.loop.create_task(cycle.run(), context=self.base_context.copy())
        else:  # Python 3.10: create the task inside the copy, which it then copies again
            task = self.base_context.copy().run(self.loop.create_task, cycle.run())
        ctx.tasks.add(task)
        task.add_done_callback(ctx.tasks.discard)

    def _build_scope(
        self, event: h11.Request, headers: list[tuple[bytes, bytes]]
    ) -> dict[str, Any]:
        target = event.target
        if not target.startswith(b"/"):
            target = _origin_form(target)
        raw_path, _, query = target.partition(b"?")
        client, scheme = self.client, self.scheme
        if self.is_peer_trusted_proxy and client is not None:
            client, scheme = self.ctx.proxies.resolve_trusted(client, scheme, headers)  # type: ignore[union-attr]  # set with the flag
        root_path = self.ctx.config.root_path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        return {
            "type": "http",
            "asgi": _ASGI_VERSIONS,
            "http_version": event.http_version.decode(),
            "server": self.server,
            "client": client,
            "scheme": scheme,
            "method": event.method.decode("ascii"),
            "root_path": root_path,
            "path": root_path + path,
            "raw_path": root_path.encode() + raw_path,
            "query_string": query,
            "headers": headers,
            "state": self.ctx.state.copy(),
            "extensions": {},
        }

    def _switch_to_websocket(self, event: h11.Request, headers: list[tuple[bytes, bytes]]) -> None:
        """Hand the connection to a WebSocket protocol, replaying the upgrade request."""
        ctx = self.ctx
        assert ctx.websocket_settings is not None  # noqa: S101 - checked by the caller
        head = b"%s %s HTTP/%s\r\n" % (event.method, event.target, event.http_version)
        head += b"".join(k + b": " + v + b"\r\n" for k, v in event.headers.raw_items()) + b"\r\n"
        rest = self.conn.trailing_data[0]
        client, scheme = self.client, self.scheme
        if self.is_peer_trusted_proxy and client is not None and ctx.proxies is not None:
            client, scheme = ctx.proxies.resolve_trusted(client, scheme, headers)
        from devserve.websocket_server import WebSocketProtocol  # noqa: PLC0415 - on first use

        websocket = WebSocketProtocol(
            app=ctx.app,
            settings=ctx.websocket_settings,
            scope_base={
                "scheme": "wss" if scheme == "https" else "ws",
                "server": self.server,
                "client": client,
                "root_path": ctx.config.root_path,
                "state": ctx.state,
            },
            emit=ctx.emit or _ignore,
            on_close=ctx.discard,
            loop=self.loop,
        )
        self._stop_timer()
        self.is_closed = True  # this HTTP protocol is done with the transport
        ctx.websockets.add(websocket)
        ctx.discard(self)
        if self.is_read_paused:
            self.transport.resume_reading()
        self.transport.set_protocol(websocket)
        websocket.connection_made(self.transport)
        websocket.data_received(head + rest)

    def _next_cycle(self, cycle: RequestCycle) -> None:
        """The response is done and the request fully read: keep alive or close.

        The next request is parsed by a fresh h11 connection fed the bytes left over from
        this one (pipelined requests): responses are not sent through h11, so its state
        machine is only ever used for one request.
        """
        conn = self.conn
        self.cycle = None
        leftover, is_peer_closed = conn.trailing_data
        if cycle.writer.must_close or self.ctx.is_draining or is_peer_closed:
            self.close()
            return
        if conn.their_state is h11.DONE:
            self.conn = h11.Connection(
                h11.SERVER,
                max_incomplete_event_size=self.ctx.config.h11_max_incomplete_event_size,
            )
            if leftover:
                self.conn.receive_data(leftover)
            self.is_waiting_head_bytes = bool(leftover)
            self._arm(self.ctx.config.timeout_keep_alive_s, self._on_idle_timeout)
            if self.is_read_paused:
                self.is_read_paused = False
                self.transport.resume_reading()
            self._handle_events()

    def response_finished(self, cycle: RequestCycle) -> None:
        """Called by the cycle when its last byte is written."""
        if self.conn.their_state is h11.DONE or cycle.writer.must_close:
            self._next_cycle(cycle)
        elif self.is_read_paused:
            # The app answered without reading the whole body; keep reading to discard it.
            self.is_read_paused = False
            self.transport.resume_reading()

    def fail(self, failure: ProtocolFailed) -> None:
        """Answer a protocol failure (if nothing was sent yet) and close."""
        cycle = self.cycle
        if cycle is None or not cycle.is_started:
            body = (
                f"{failure.status} {REASONS.get(failure.status, b'').decode()}: {failure.reason}\n"
            )
            self.transport.write(build_error_response(self.conn, failure.status, body.encode()))
        self.close()

    # -- flow control and lifecycle ------------------------------------------------------

    def pause_reading(self) -> None:
        """Stop reading request bytes until the app catches up."""
        if not self.is_read_paused and not self.is_closed:
            self.is_read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Let more request bytes in (the app consumed what was buffered)."""
        if self.is_read_paused and not self.is_closed and self.conn.their_state is not h11.DONE:
            self.is_read_paused = False
            self.transport.resume_reading()

    async def drain_writes(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        waiter = self.write_paused
        if waiter is not None and not waiter.done():
            await waiter

    def drain(self, linger_s: float) -> None:
        """Graceful stop: busy connections close after their current response.

        An idle kept-alive connection is not closed at once: a request may already be on
        the wire, and closing under it loses that request (clients do not retry a POST).
        It lingers for `linger_s`; a request arriving meanwhile is answered with
        ``connection: close``.
        """
        is_idle = self.cycle is None and self.conn.their_state is h11.IDLE
        if is_idle and not self.is_closed and not self.conn.trailing_data[0]:
            self._arm(linger_s, self._on_idle_timeout)

    def close(self) -> None:
        """Close after pending writes are flushed."""
        if not self.is_closed:
            self.is_closed = True
            self._stop_timer()
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection without flushing."""
        self.is_closed = True
        self._stop_timer()
        self.transport.abort()

    def _arm(self, delay_s: float, callback: Callable[[], None]) -> None:
        """Set the connection's one deadline.

        Deadlines move on every request, so the loop timer is not re-created each time:
        it stays armed for the earliest deadline seen and, when it fires early, re-arms
        itself for the current one. At most one loop timer per timeout period.
        """
        when = self.loop.time() + delay_s
        self.deadline = when
        self.deadline_action = callback
        if self.timer is None or self.timer.when() > when:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(when, self._on_timer)

    def _cancel_timer(self) -> None:
        self.deadline_action = None

    def _stop_timer(self) -> None:
        self.deadline_action = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_timer(self) -> None:
        self.timer = None
        action = self.deadline_action
        if action is None or self.is_closed:
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._on_timer)
            return
        self.deadline_action = None
        action()

    def _on_idle_timeout(self) -> None:
        self.close()

    def _on_head_timeout(self) -> None:
        if self.conn.trailing_data[0]:
            self.fail(ProtocolFailed(408, "request head not received in time"))
        else:
            self.close()

    def arm_body_timer(self, callback: Callable[[], None]) -> None:
        """Start the body clock while the app waits for body bytes."""
        self._arm(self.ctx.config.timeout_request_body_s, callback)

    def cancel_body_timer(self) -> None:
        """Body bytes arrived (or the wait ended)."""
        self._cancel_timer()


def _address(value: object) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:  # noqa: PLR2004 - (host, port, ...)
        return (str(value[0]), int(value[1]))
    return None


def _origin_form(target: bytes) -> bytes:
    """Reduce an absolute-form or asterisk-form target to a path."""
    if target == b"*":
        return b"*"
    _, sep, rest = target.partition(b"://")
    if not sep:
        return b"/" + target
    slash = rest.find(b"/")
    return rest[slash:] if slash >= 0 else b"/"


def _ignore(_event: Event) -> None:
    return None


def _is_websocket_upgrade(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:  # noqa: SIM110 - any() over a generator costs twice as much
        if name == b"upgrade" and value.lower() == b"websocket":
            return True
    return False
