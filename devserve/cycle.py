"""One HTTP request/response exchange: the ASGI ``receive``/``send`` pair.

A `RequestCycle` is created by `devserve.server.HttpProtocol` for each request head. It
buffers request body bytes for ``receive()`` (pausing the transport above a high-water
mark), frames the app's response with `devserve.protocol.http11.ResponseWriter` (the head
is written with the first body chunk, so a one-chunk response gets a content-length and
one write), runs the app inside the worker's one broad catch, and reports
`RequestCompleted` / `AppErrored`.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devserve.events import AppErrored, RequestCompleted, TracebackFrame
from devserve.protocol.http11 import (
    REASONS,
    ProtocolFailed,
    ResponseError,
    ResponseWriter,
    build_error_response,
)

if TYPE_CHECKING:
    from devserve.asgi import Message
    from devserve.server import HttpProtocol

_READ_HIGH_WATER = 256 * 1024


class RequestCycle:
    """One request/response exchange: the ASGI ``receive``/``send`` pair and its bookkeeping."""

    __slots__ = (
        "body",
        "bytes_in",
        "bytes_out",
        "disconnected",
        "held",
        "is_body_delivered",
        "is_complete",
        "is_head",
        "is_started",
        "more_body",
        "pending_head",
        "protocol",
        "scope",
        "sent_continue",
        "started_at",
        "status",
        "waiter",
        "writer",
    )

    def __init__(
        self, protocol: HttpProtocol, scope: dict[str, Any], *, is_close_requested: bool
    ) -> None:
        self.protocol = protocol
        self.scope = scope
        self.writer = ResponseWriter(
            is_head=scope["method"] == "HEAD",
            is_http10=scope["http_version"] == "1.0",
            is_close_requested=is_close_requested,
        )
        self.sent_continue = False
        self.is_body_delivered = False
        self.started_at = time.perf_counter()  # uvloop's loop.time() counts whole ms
        self.is_head = scope["method"] == "HEAD"
        self.body = bytearray()
        self.more_body = True
        self.disconnected = False
        self.waiter: asyncio.Future[None] | None = None
        self.is_started = False
        self.is_complete = False
        self.pending_head: list[tuple[bytes, bytes]] | None = None
        self.held: bytes | None = None
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0

    # -- input from the protocol ---------------------------------------------------------

    def on_body(self, data: bytes) -> None:
        """Request body bytes arrived."""
        self.body += data
        self.bytes_in += len(data)
        if len(self.body) > _READ_HIGH_WATER:
            self.protocol.pause_reading()
        self._wake()

    def on_body_end(self) -> None:
        """The request body is complete."""
        self.more_body = False
        self._wake()

    def on_disconnect(self) -> None:
        """The client went away."""
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            self.protocol.cancel_body_timer()
            if not waiter.done():
                waiter.set_result(None)

    def _on_body_timeout(self) -> None:
        protocol = self.protocol
        if not self.is_started:
            protocol.fail(ProtocolFailed(408, "request body not received in time"))
        else:
            protocol.close()
        self.on_disconnect()

    # -- the ASGI interface ----------------------------------------------------------------

    async def receive(self) -> Message:
        """ASGI ``receive``: body chunks, then ``http.disconnect`` once the client is gone."""
        protocol = self.protocol
        if self.is_body_delivered or self.is_complete:
            # After the whole body, receive() waits for the client to leave (or the
            # response to finish), as frameworks' disconnect listeners expect.
            if not self.disconnected and not self.is_complete:
                self.waiter = protocol.loop.create_future()
                await self.waiter
            return {"type": "http.disconnect"}
        if self.more_body and not self.body and not self.disconnected:
            if (
                protocol.conn.client_is_waiting_for_100_continue
                and not self.is_started
                and not self.sent_continue
            ):
                self.sent_continue = True
                protocol.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiter = protocol.loop.create_future()
            protocol.arm_body_timer(self._on_body_timeout)
            await self.waiter
        if self.disconnected:
            return {"type": "http.disconnect"}
        body = bytes(self.body)
        self.body.clear()
        if self.more_body:
            protocol.resume_reading()
        else:
            self.is_body_delivered = True
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: Message) -> None:
        """ASGI ``send``."""
        kind = message["type"]
        if not self.is_started:
            if kind != "http.response.start":
                msg = f"expected 'http.response.start', got {kind!r}"
                raise RuntimeError(msg)
            self._start(message)
            return
        if self.is_complete:
            msg = f"response already complete, got {kind!r}"
            raise RuntimeError(msg)
        if kind != "http.response.body":
            msg = f"expected 'http.response.body', got {kind!r}"
            raise RuntimeError(msg)
        await self._body(message.get("body", b""), more=message.get("more_body", False))

    def _start(self, message: Message) -> None:
        protocol = self.protocol
        self.status = int(message["status"])
        headers = protocol.ctx.response_headers.build(
            message.get("headers", ()), protocol.ctx.date_header()
        )
        if protocol.ctx.is_draining:
            headers.append((b"connection", b"close"))
        self.is_started = True
        # The head is serialised with the first body chunk, so a one-chunk response can
        # carry a content-length instead of chunked framing, in a single write.
        self.pending_head = headers

    async def _body(self, body: bytes, *, more: bool) -> None:
        protocol = self.protocol
        writer = self.writer
        data = b""
        headers = self.pending_head
        if headers is not None:
            self.pending_head = None
            status = self.status
            try:
                data = writer.head(
                    status, REASONS.get(status, b""), headers, None if more else len(body)
                )
            except ResponseError:
                self.is_started = False  # nothing was sent: the app boundary answers 500
                raise
        data += writer.body(body, more=more)
        if writer.sends_body:
            self.bytes_out += len(body)
        if self.status == 500 and not more and headers is not None and protocol.ctx.error_page:  # noqa: PLR2004
            # A framework's own plain 500 (Starlette sends one, then re-raises): held back
            # until the app returns, so that the error page can replace it if it raises.
            self.held = data
            return
        if not more:
            self.is_complete = True
        if data and not protocol.is_closed:
            protocol.transport.write(data)
        if self.is_complete:
            self._finish()
        elif protocol.write_paused is not None:
            await protocol.drain_writes()

    def _finish(self) -> None:
        self._report()
        self._wake()
        if not self.protocol.is_closed:
            self.protocol.response_finished(self)

    def _report(self) -> None:
        emit = self.protocol.ctx.emit
        scope = self.scope
        if emit is None or "devserve.quiet" in scope:
            return
        client = scope["client"]
        route = getattr(scope.get("route"), "path", None)
        query = scope["query_string"]
        emit(
            RequestCompleted(  # positionally, in field order: once per request
                scope["method"],
                scope["path"],
                self.status,
                (time.perf_counter() - self.started_at) * 1000.0,
                self.bytes_in,
                self.bytes_out,
                f"{client[0]}:{client[1]}" if client else "-",
                scope["http_version"],
                scope["scheme"],
                route if isinstance(route, str) else None,
                query.decode("latin-1") if query else "",
            )
        )

    # -- running the app -------------------------------------------------------------------

    async def run(self) -> None:
        """Run the application for this request: the worker's one broad catch."""
        try:
            await self.protocol.ctx.app(self.scope, self.receive, self.send)
        except Exception as exc:  # noqa: BLE001 - the app boundary: report, answer, keep serving
            self._report_error(exc)
            if not self.is_started or self.held is not None:
                self.held = None
                self._send_500(exc)
            else:
                self.status = self.status or 500
                self._report()
                self.protocol.abort()
            return
        if self.held is not None:  # the app's own 500, and it did not raise: send it
            held, self.held = self.held, None
            self.is_complete = True
            if not self.protocol.is_closed:
                self.protocol.transport.write(held)
            self._finish()
            return
        if not self.is_started:
            error = RuntimeError("the application returned without sending a response")
            self._report_error(error)
            self._send_500(error)
        elif not self.is_complete:
            # Returned mid-response: the client cannot know where the body ends.
            self._report()
            self.protocol.close()

    def _send_500(self, exc: BaseException | None = None) -> None:
        protocol = self.protocol
        if protocol.is_closed:
            return
        self.status = 500
        page = protocol.ctx.error_page
        rendered = page(exc, self.scope) if page is not None and exc is not None else None
        content_type, body = rendered or (b"text/plain; charset=utf-8", b"Internal Server Error\n")
        self.bytes_out = len(body)
        protocol.transport.write(
            build_error_response(protocol.conn, 500, body, content_type=content_type)
        )
        self.is_complete = True
        self._report()
        protocol.close()

    def _report_error(self, exc: BaseException) -> None:
        emit = self.protocol.ctx.emit
        if emit is None:
            return
        emit(error_event(exc, self.scope["method"], self.scope["path"], self.is_started))


_DEVSERVE_DIR = str(Path(__file__).resolve().parent)


def _is_user_file(filename: str) -> bool:
    """Not the standard library, an installed package or devserve itself."""
    return not (
        "site-packages" in filename
        or "/lib/python" in filename
        or filename.startswith(_DEVSERVE_DIR)
        or filename.startswith("<frozen ")
    )


def error_event(exc: BaseException, method: str, path: str, response_started: bool) -> AppErrored:
    """Describe an application exception as an `AppErrored` event."""
    frames = tuple(
        TracebackFrame(
            filename=f.filename,
            lineno=f.lineno or 0,
            name=f.name,
            line=f.line or "",
            is_user_code=_is_user_file(f.filename),
        )
        for f in traceback.extract_tb(exc.__traceback__)
    )
    return AppErrored(
        exc_type=type(exc).__qualname__,
        message=str(exc),
        traceback="".join(traceback.format_exception(exc)),
        frames=frames,
        method=method,
        path=path,
        response_started=response_started,
    )
