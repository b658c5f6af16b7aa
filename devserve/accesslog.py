"""Plain-line reporting of worker events: the access log of single-process mode.

One line per event, with a uvicorn-like level prefix so existing log habits carry over,
plus latency and size, which uvicorn's access log lacks::

    INFO:     127.0.0.1:52144 - "GET /items/3 HTTP/1.1" 200 OK 1.8 ms 412 B

Colors (plain ANSI; the worker does not import rich) only when the stream is a terminal
or ``FORCE_COLOR`` is set, never with ``NO_COLOR``. Lines are buffered and written once
per event-loop iteration, so a burst of requests costs one write, not one per line.
The live dashboard replaces this sink with the IPC sender; both take `Event` objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Mapping
from http import HTTPStatus
from typing import TextIO

from devserve.config import Config
from devserve.events import (
    AppErrored,
    Event,
    LogLine,
    RequestCompleted,
    ServerStarted,
    ServerStopping,
    StartupFailed,
    WebSocketClosed,
    WebSocketOpened,
)

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_LEVEL_COLORS = {"DEBUG": "36", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}
_STATUS_COLORS = {1: "0", 2: "32", 3: "36", 4: "33", 5: "31"}
_LEVELS = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def reporter_for(config: Config, environ: Mapping[str, str]) -> LineReporter:
    """The stdout reporter a run of `config` uses (single-process or supervisor)."""
    return LineReporter(
        sys.stdout,
        color=should_color(sys.stdout, environ),
        access_log=config.access_log,
        log_level=config.log_level,
    )


def should_color(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Decide whether to color output to `stream` (NO_COLOR > FORCE_COLOR > is a TTY)."""
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class LineReporter:
    """Write events as lines to a text stream.

    Args:
        stream: where lines go.
        color: use ANSI colors.
        access_log: write a line per finished request.
        log_level: lowest level written for server diagnostics.
    """

    def __init__(
        self, stream: TextIO, *, color: bool, access_log: bool = True, log_level: str = "info"
    ) -> None:
        self.stream = stream
        self.color = color
        self.access_log = access_log
        self.min_level = _LEVELS.get(log_level, 20)
        self._pending: list[str] = []
        self._scheduled = False

    def __call__(self, event: Event) -> None:
        """Report one event."""
        line = self.format(event)
        if line is None:
            return
        self._pending.append(line)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write buffered lines now."""
        self._scheduled = False
        if self._pending:
            text = "\n".join(self._pending) + "\n"
            self._pending.clear()
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(text)
                self.stream.flush()

    def format(self, event: Event) -> str | None:
        """The line for `event`, or None when it is not shown."""
        line: str | None = None
        match event:
            case RequestCompleted():
                line = self._request(event) if self.access_log else None
            case AppErrored():
                where = f" ({event.method} {event.path})" if event.method else ""
                line = self._prefix("ERROR") + f"Exception in ASGI application{where}\n"
                line += event.traceback.rstrip()
            case LogLine():
                if _LEVELS.get(event.level, 20) >= self.min_level:
                    line = self._prefix(event.level.upper()) + event.message
            case ServerStarted() if self.min_level <= _LEVELS["info"]:
                line = self._prefix("INFO") + (
                    f"devserve serving {event.app} on {', '.join(event.urls)} "
                    f"(ready in {event.startup_ms:.0f} ms; Ctrl+C to quit)"
                )
            case ServerStopping() if self.min_level <= _LEVELS["info"]:
                tail = f", waiting for {event.in_flight} request(s)" if event.in_flight else ""
                line = self._prefix("INFO") + f"shutting down{tail}"
            case WebSocketOpened() | WebSocketClosed():
                line = self._websocket(event) if self.access_log else None
            case StartupFailed():
                where = f" at {event.filename}:{event.lineno}" if event.filename else ""
                line = self._prefix("ERROR") + (
                    f"the application failed during {event.stage}{where}\n"
                    f"{event.traceback.rstrip()}"
                )
        return line

    def _websocket(self, event: WebSocketOpened | WebSocketClosed) -> str:
        if isinstance(event, WebSocketOpened):
            client = f"{event.client[0]}:{event.client[1]}" if event.client else "-"
            sub = f" [{event.subprotocol}]" if event.subprotocol else ""
            return f'{self._prefix("INFO")}{client} - "WebSocket {event.path}"{sub} [accepted]'
        return (
            f'{self._prefix("INFO")}"WebSocket {event.path}" closed {event.close_code} after '
            f"{event.duration_ms / 1000:.1f} s ({event.messages_in} in, {event.messages_out} out)"
        )

    def _prefix(self, level: str) -> str:
        text = f"{level}:".ljust(10)
        if not self.color:
            return text
        return f"\x1b[{_LEVEL_COLORS.get(level, '0')}m{level}\x1b[0m:" + " " * (9 - len(level))

    def _request(self, event: RequestCompleted) -> str:
        status = f"{event.status} {_PHRASES.get(event.status, '')}".rstrip()
        if self.color:
            status = f"\x1b[{_STATUS_COLORS.get(event.status // 100, '0')}m{status}\x1b[0m"
        return (
            f'{self._prefix("INFO")}{event.client} - "{event.method} {event.path} '
            f'HTTP/{event.http_version}" {status} {event.duration_ms:.1f} ms {event.bytes_out} B'
        )
