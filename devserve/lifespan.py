"""ASGI lifespan: run the app's startup and shutdown, bounded, and share its state.

The app runs in one task for the process's life. ``auto`` mode treats an app that raises
before answering ``lifespan.startup`` as one that does not support lifespan; ``on`` mode
treats that as a startup failure. ``off`` never calls the app with a lifespan scope.
"""

from __future__ import annotations

import asyncio
import enum
import traceback
from typing import TYPE_CHECKING, Any

from devserve.errors import DevserveError

if TYPE_CHECKING:
    from devserve.asgi import ASGIApp, Message


class StartupFailed(DevserveError):
    """Lifespan startup failed; the message is the app's, or a traceback.

    ``error`` is the exception the app raised, when it raised (for the error page).
    """

    error: BaseException | None = None


class _Phase(enum.Enum):
    IDLE = "idle"
    STARTING = "starting"
    STARTED = "started"
    UNSUPPORTED = "unsupported"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Lifespan:
    """One application's lifespan protocol.

    Args:
        app: the ASGI application.
        mode: "auto", "on" or "off".
        state: the dict shared (shallow-copied) into every request scope.
    """

    def __init__(self, app: ASGIApp, mode: str, state: dict[str, Any]) -> None:
        self.app = app
        self.mode = mode
        self.state = state
        self.phase = _Phase.IDLE
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._answered = asyncio.Event()
        self._failure: str | None = None
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self, timeout_s: float) -> None:
        """Run startup; return when the app reports it complete or unsupported.

        Raises:
            StartupFailed: the app reported failure, raised (in "on" mode), or timed out.
        """
        if self.mode == "off":
            self.phase = _Phase.UNSUPPORTED
            return
        self.phase = _Phase.STARTING
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = self.state
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._queue.put({"type": "lifespan.startup"})
        try:
            await asyncio.wait_for(self._answered.wait(), timeout_s)
        except asyncio.TimeoutError:
            msg = f"lifespan startup did not complete within {timeout_s:g} s"
            raise StartupFailed(msg) from None
        if self._failure is not None:
            failed = StartupFailed(self._failure)
            failed.error = self._error
            raise failed

    async def shutdown(self, timeout_s: float) -> None:
        """Run shutdown, bounded by `timeout_s`; failures are reported, not raised."""
        if self.phase is not _Phase.STARTED:
            if self._task is not None:
                self._task.cancel()
            return
        self.phase = _Phase.STOPPING
        self._answered.clear()
        await self._queue.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self._answered.wait(), timeout_s)
        except asyncio.TimeoutError:
            self._failure = f"lifespan shutdown did not complete within {timeout_s:g} s"
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.phase = _Phase.STOPPED

    @property
    def failure(self) -> str | None:
        """The last failure message, if any."""
        return self._failure

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:  # noqa: BLE001 - the app boundary
            if self.phase is _Phase.STARTING and self.mode == "auto":
                self.phase = _Phase.UNSUPPORTED
            elif self.phase in {_Phase.STARTING, _Phase.STOPPING}:
                self._failure = "".join(traceback.format_exception(exc)).rstrip()
                self._error = exc
            self._answered.set()
            return
        if self.phase is _Phase.STARTING:
            # Returned without answering startup: treat as unsupported.
            self.phase = _Phase.UNSUPPORTED if self.mode == "auto" else self.phase
            if self.mode == "on":
                self._failure = "the application returned during lifespan startup"
        self._answered.set()

    async def _receive(self) -> Message:
        return await self._queue.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self.phase = _Phase.STARTED
        elif kind == "lifespan.startup.failed":
            self._failure = str(message.get("message") or "lifespan startup failed")
        elif kind == "lifespan.shutdown.failed":
            self._failure = str(message.get("message") or "lifespan shutdown failed")
        elif kind != "lifespan.shutdown.complete":
            msg = f"unexpected lifespan message {kind!r}"
            raise RuntimeError(msg)
        self._answered.set()
