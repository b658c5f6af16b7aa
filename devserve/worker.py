"""Serve one application on listening sockets: import, lifespan, accept, drain, stop.

This is the whole server in single-process mode (no ``--reload``), and what each worker
process runs under the supervisor. It never imports rich or watchfiles.

Shutdown sequence, bounded at every step::

    stop requested (SIGINT/SIGTERM or the `stop` event)
      -> stop accepting (close listening servers and TLS acceptors)
      -> drain: idle connections linger briefly, busy ones get `connection: close`,
         WebSockets are closed with 1012
      -> wait up to graceful_s for open connections to finish
      -> abort what is left, cancel app tasks
      -> lifespan shutdown (bounded by graceful_s)

A second SIGINT/SIGTERM during shutdown skips the waiting.

Plain listeners are served by ``loop.create_server``; TLS listeners by a
`devserve.tlssniff.TLSAcceptor`, which also answers plain HTTP sent to them with a redirect
to HTTPS. Both only need ``close()`` to stop accepting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from devserve import stepaside
from devserve.appload import load_app
from devserve.asgi import ASGIApp
from devserve.config import Config
from devserve.devmode import DevMode
from devserve.events import Event, LogLine, ServerStarted, ServerStopping
from devserve.forwarded import TrustedProxies
from devserve.lifespan import Lifespan, StartupFailed
from devserve.server import HttpProtocol, ServerContext
from devserve.sockets import Listener
from devserve.stepaside import HOLD_S, Accepting, Acceptor
from devserve.wssettings import WebSocketSettings

_T = TypeVar("_T")
LIFESPAN_STARTUP_TIMEOUT_S = 60.0


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """Return the event-loop factory for ``--loop`` (uvloop when available under "auto")."""
    if name in {"auto", "uvloop"}:
        try:
            import uvloop  # noqa: PLC0415 - optional, and only the worker needs it
        except ImportError:
            if name == "uvloop":
                raise
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run_coroutine(
    coro: Coroutine[Any, Any, _T], factory: Callable[[], asyncio.AbstractEventLoop]
) -> _T:
    """Run `coro` to completion on a fresh loop from `factory` (no global policy)."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)
    loop = factory()  # pragma: no cover - Python 3.10
    try:  # pragma: no cover
        return loop.run_until_complete(coro)
    finally:  # pragma: no cover
        loop.close()


@contextlib.contextmanager
def _interruptible_by_sigint(enabled: bool) -> Iterator[None]:
    """Let Ctrl+C interrupt the app's import at once (``KeyboardInterrupt``).

    Importing is synchronous: under ``asyncio.Runner`` the first Ctrl+C only cancels the
    main task, which takes effect once the import is over, so an app stuck at import (a
    database it waits for, a long computation) could not be stopped with one Ctrl+C.
    """
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Worker:
    """One server generation: an app served on listeners until stopped.

    Args:
        config: validated configuration.
        listeners: bound listening sockets (never closed by the caller while serving).
        emit: event sink.
        ssl_context: TLS for the listeners marked ``is_tls``, or None.
        started_at: `time.monotonic()` when the process began, for the ready time.
        dev: dev mode (host check, error pages, live reload) around the app, or None.
    """

    def __init__(
        self,
        config: Config,
        listeners: Sequence[Listener],
        *,
        emit: Callable[[Event], None],
        ssl_context: ssl.SSLContext | None = None,
        started_at: float | None = None,
        app: ASGIApp | None = None,
        parent_fd: int | None = None,
        on_ready: Callable[[], None] | None = None,
        stop_signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
        step_aside_signal: int | None = None,
        dev: DevMode | None = None,
    ) -> None:
        self.config = config
        self.dev = dev
        self.app = app
        self.parent_fd = parent_fd
        self.on_ready = on_ready
        self.stop_signals = stop_signals
        self.step_aside_signal = step_aside_signal
        self.accepting: Accepting | None = None
        self._ctx: ServerContext | None = None
        self.listeners = list(listeners)
        self.emit = emit
        self.ssl_context = ssl_context
        self.started_at = time.monotonic() if started_at is None else started_at
        self.stop_requested = asyncio.Event()
        self.force = asyncio.Event()
        self._signals = 0

    async def serve(self) -> int:
        """Serve until stopped; return the process exit code.

        Raises:
            AppLoadError: the APP string names nothing usable.
            StartupFailed: lifespan startup failed.
        """
        config = self.config
        assert config.app is not None  # noqa: S101 - the CLI resolves APP before serving
        loop = asyncio.get_running_loop()
        if self.parent_fd is not None:
            loop.add_reader(self.parent_fd, self._parent_readable)
        with _interruptible_by_sigint(signal.SIGINT in self.stop_signals):
            app = self.app or load_app(config.app, app_dir=config.app_dir, factory=config.factory)
        state: dict[str, Any] = {}
        lifespan = Lifespan(app, config.lifespan, state)
        await lifespan.startup(LIFESPAN_STARTUP_TIMEOUT_S)
        proxies = TrustedProxies(config.forwarded_allow_ips) if config.proxy_headers else None
        dev = self.dev
        served = dev.wrap(app) if dev is not None else app
        ctx = ServerContext(served, config, emit=self.emit, state=state, proxies=proxies)
        self._ctx = ctx
        if dev is not None:
            ctx.error_page = dev.error_response
            dev.start(loop)
        if config.ws != "none":
            ctx.websocket_settings = WebSocketSettings(
                max_size_bytes=config.ws_max_size,
                max_queue=config.ws_max_queue,
                ping_interval_s=config.ws_ping_interval_s,
                ping_timeout_s=config.ws_ping_timeout_s,
                per_message_deflate=config.ws_per_message_deflate,
                graceful_timeout_s=config.graceful_s,
                close_timeout_s=min(config.graceful_s, 5.0),
            )
        starts = [
            functools.partial(self._accept, loop, listener, ctx) for listener in self.listeners
        ]
        self.accepting = accepting = Accepting(starts)
        await accepting.open()
        self._install_signals(loop)
        urls = tuple(_display_url(listener) for listener in self.listeners)
        ready_ms = (time.monotonic() - self.started_at) * 1000.0
        self.emit(ServerStarted(pid=os.getpid(), urls=urls, app=config.app, startup_ms=ready_ms))
        if self.on_ready is not None:
            self.on_ready()
        await self.stop_requested.wait()
        await self._shutdown(accepting, ctx, lifespan)
        return 0

    async def _accept(
        self, loop: asyncio.AbstractEventLoop, listener: Listener, ctx: ServerContext
    ) -> Acceptor:
        """Start accepting on `listener`: TLS (with the plain-HTTP redirect) or plain."""
        ssl_context = self.ssl_context if listener.is_tls else None
        scheme = "https" if ssl_context is not None else "http"

        def make_protocol() -> HttpProtocol:
            protocol = HttpProtocol(ctx)
            protocol.scheme = scheme  # per listener: with --https-port one port is plain
            return protocol

        if ssl_context is not None:
            from devserve.tlssniff import TLSAcceptor  # noqa: PLC0415 - TLS listeners only

            acceptor = TLSAcceptor(
                listener.sock,
                make_protocol,
                ssl_context,
                head_timeout_s=self.config.timeout_request_head_s,
            )
            acceptor.start()
            return acceptor
        # Closing the server closes its socket: a worker that may step aside (and so start
        # accepting again) serves a copy of the descriptor. A single process serves the
        # socket itself, so that new connections are refused once it stops accepting.
        sock = listener.sock.dup() if self.step_aside_signal is not None else listener.sock
        return await loop.create_server(make_protocol, sock=sock, backlog=self.config.backlog)

    def request_stop(self) -> None:
        """Begin graceful shutdown; a second call forces it."""
        self._signals += 1
        if self._signals > 1:
            self.force.set()
        self.stop_requested.set()

    def _parent_readable(self) -> None:
        """The parent pipe is readable only at end-of-file: the supervisor is gone."""
        try:
            data = os.read(self.parent_fd, 1) if self.parent_fd is not None else b""
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.parent_fd)  # type: ignore[arg-type]
            self.request_stop()

    def step_aside(self) -> None:
        """A newer generation is starting: hold new connections for it, and yield the CPU.

        New connections wait for it up to `HOLD_S` (see `Accepting`). Once the requests in
        flight now are answered (their clients are waiting; or after `YIELD_AFTER_S`, as
        a stream may never end), this worker runs at the lowest priority (`yield_cpu`).
        """
        if self.accepting is not None and not self.stop_requested.is_set():
            self.accepting.hold(HOLD_S)
        in_flight = set(self._ctx.tasks) if self._ctx is not None else set()
        if not in_flight:
            stepaside.yield_cpu()
            return

        def answered(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            if not in_flight:
                stepaside.yield_cpu()

        for task in list(in_flight):
            task.add_done_callback(answered)
        asyncio.get_running_loop().call_later(stepaside.YIELD_AFTER_S, stepaside.yield_cpu)

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for signum in self.stop_signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self.request_stop)
        if self.step_aside_signal is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(self.step_aside_signal, self.step_aside)

    async def _shutdown(self, accepting: Accepting, ctx: ServerContext, lifespan: Lifespan) -> None:
        accepting.close()
        in_flight = len(ctx.tasks)
        self.emit(ServerStopping(in_flight=in_flight))
        if self.dev is not None:
            self.dev.close()  # live-reload streams end: browsers move to the next worker
        ctx.drain()
        grace_s = self.config.graceful_s
        waiters = [
            asyncio.ensure_future(ctx.all_closed.wait()),
            asyncio.ensure_future(self.force.wait()),
        ]
        _, pending = await asyncio.wait(
            waiters, timeout=grace_s, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in pending:
            waiter.cancel()
        if ctx.connections or ctx.tasks:
            if not self.force.is_set():
                self.emit(
                    LogLine("warning", f"graceful shutdown timed out after {grace_s:g} s; closing")
                )
            ctx.abort_all()
            await asyncio.sleep(0)  # let cancelled tasks unwind once
        if not self.force.is_set():
            await lifespan.shutdown(grace_s)
            if lifespan.failure is not None:
                self.emit(LogLine("error", lifespan.failure))


def _display_url(listener: Listener) -> str:
    return listener.url.replace("://0.0.0.0:", "://localhost:").replace("://[::]:", "://localhost:")


__all__ = ["StartupFailed", "Worker", "loop_factory", "run_coroutine"]
