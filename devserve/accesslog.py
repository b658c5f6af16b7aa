"""``--ui plain``: one line per event, the access log and server log in one.

One line per event, with a uvicorn-like level prefix so existing log habits carry over,
plus latency and size, which uvicorn's access log lacks::

    INFO:     127.0.0.1:52144 - "GET /items/3 HTTP/1.1" 200 OK 1.8 ms 412 B
    WARNING:  127.0.0.1:52146 - "GET /report HTTP/1.1" 200 OK 812.4 ms 9120 B [slow]
    INFO:     reloaded in 26 ms [fork] (app/models.py)
    ERROR:    worker 3 stopped unexpectedly (exit code 1); restarting in 0.1 s

A request slower than ``--slow-ms`` is marked ``[slow]`` at WARNING. Tracebacks are written
whole, one frame per line as Python prints them, so IDE consoles link ``File "...", line N``.
Worker lifecycle facts other than crashes (started, ready, draining, exited, change
detected) are DEBUG lines. App output that reaches the reporter is written as it came.

Colors (plain ANSI; the worker does not import rich) only when the stream is a terminal
or ``FORCE_COLOR`` is set, never with ``NO_COLOR``.

Flushing: every line is written and flushed at once, unless ``is_batched``; then the lines
of one event-loop iteration are written together at its end. The supervisor batches (its
loop runs no app code, and a frame of events costs one write); single-process mode must not,
because the app shares the loop: a handler that blocks it (``time.sleep``, ``breakpoint()``)
would hold back the lines of requests that had already finished.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from http import HTTPStatus
from typing import TextIO

from devserve.config import Config
from devserve.events import (
    AppErrored,
    AppOutput,
    ChangeDetected,
    Event,
    LogLine,
    ReloadFinished,
    RequestCompleted,
    ServerStarted,
    ServerStopping,
    StartupFailed,
    WebSocketClosed,
    WebSocketOpened,
    WorkerDraining,
    WorkerExited,
    WorkerReady,
    WorkerStarted,
    exit_how,
)
from devserve.linesink import LineSink
from devserve.summary import format_ms, summary_text
from devserve.tui.stats import StatsSummary

_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_LEVEL_COLORS = {"DEBUG": "36", "INFO": "32", "WARNING": "33", "ERROR": "31", "CRITICAL": "1;31"}
_STATUS_COLORS = {1: "0", 2: "32", 3: "36", 4: "33", 5: "31"}
_LEVELS = {"trace": 5, "debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


_MAX_FILES_SHOWN = 3


def reporter_for(
    config: Config, environ: Mapping[str, str], *, stream: TextIO | None = None, is_batched: bool
) -> LineReporter:
    """The plain reporter a run of `config` uses (single-process or supervisor)."""
    out = sys.stdout if stream is None else stream
    return LineReporter(
        out,
        color=should_color(out, environ),
        access_log=config.access_log,
        log_level=config.log_level,
        slow_ms=config.slow_ms,
        is_batched=is_batched,
        has_reloads=config.reload,
    )


def should_color(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Decide whether to color output to `stream` (NO_COLOR > FORCE_COLOR > is a TTY)."""
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


class LineReporter:
    """Write events as lines to a text stream.

    Args:
        stream: where lines go.
        color: use ANSI colors.
        access_log: write a line per finished request.
        log_level: lowest level written for server diagnostics.
        slow_ms: requests slower than this are marked ``[slow]``.
        is_batched: write one event-loop iteration's lines together (see module notes).
        has_reloads: the run reloads, so the exit summary counts reloads.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        color: bool,
        access_log: bool = True,
        log_level: str = "info",
        slow_ms: float = 500.0,
        is_batched: bool = False,
        has_reloads: bool = False,
    ) -> None:
        self.stream = stream
        self.color = color
        self.access_log = access_log
        self.min_level = _LEVELS.get(log_level, 20)
        self.slow_ms = slow_ms
        self.has_reloads = has_reloads
        self._sink = LineSink(stream, is_batched=is_batched)

    def __call__(self, event: Event) -> None:
        """Report one event."""
        line = self.format(event)
        if line is None:
            return
        self._sink.add(line + "\n")

    def flush(self) -> None:
        """Write buffered lines now."""
        self._sink.flush()

    def finish(self, summary: StatsSummary) -> None:
        """Write the exit summary line (at INFO), then flush."""
        if self.min_level <= _LEVELS["info"]:
            line = self._prefix("INFO") + summary_text(summary, has_reloads=self.has_reloads)
            self._sink.add(line + "\n")
        self.flush()

    def _shows(self, level: str) -> bool:
        return _LEVELS.get(level, 20) >= self.min_level

    def format(self, event: Event) -> str | None:
        """The line for `event`, or None when it is not shown."""
        match event:
            case RequestCompleted():  # first: one per request
                return self._request(event) if self.access_log else None
            case (
                WorkerStarted()
                | WorkerReady()
                | WorkerDraining()
                | WorkerExited()
                | ChangeDetected()
                | ReloadFinished()
            ):
                return self._lifecycle(event)
            case AppOutput():
                return event.line
            case _:
                return self._worker_event(event)

    def _worker_event(self, event: Event) -> str | None:
        line: str | None = None
        match event:
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

    def _lifecycle(
        self,
        event: WorkerStarted
        | WorkerReady
        | WorkerDraining
        | WorkerExited
        | ChangeDetected
        | ReloadFinished,
    ) -> str | None:
        level, text = lifecycle_text(event)
        return self._prefix(level.upper()) + text if self._shows(level) else None

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
        is_slow = event.duration_ms > self.slow_ms
        mark = ""
        if is_slow:
            mark = " \x1b[1;33m[slow]\x1b[0m" if self.color else " [slow]"
        target = f"{event.path}?{event.query}" if event.query else event.path
        return (
            f"{self._prefix('WARNING' if is_slow else 'INFO')}{event.client} - "
            f'"{event.method} {target} HTTP/{event.http_version}" {status} '
            f"{event.duration_ms:.1f} ms {event.bytes_out} B{mark}"
        )


def lifecycle_text(
    event: WorkerStarted
    | WorkerReady
    | WorkerDraining
    | WorkerExited
    | ChangeDetected
    | ReloadFinished,
) -> tuple[str, str]:
    """The (level, text) of a supervisor lifecycle event's line, without the prefix."""
    level, text = "debug", ""
    match event:
        case WorkerStarted():
            text = f"worker {event.generation} starting (pid {event.pid}, {event.strategy})"
        case WorkerReady(is_broken=True):
            text = f"worker {event.generation} serving its startup error (pid {event.pid})"
        case WorkerReady():
            text = f"worker {event.generation} ready in {format_ms(event.startup_ms)}"
        case WorkerDraining():
            text = f"worker {event.generation} draining ({event.reason})"
        case WorkerExited():
            level, text = _exit_text(event)
        case ChangeDetected():
            files = _files(event.files)
            text = f"change detected: {files}" if files else "reload requested"
        case ReloadFinished(ok=False):
            cause = f" ({_files(event.files)})" if event.files else ""
            level, text = "warning", f"reload failed{cause}: serving the error until the next save"
        case ReloadFinished():
            cause = f" ({_files(event.files)})" if event.files else ""
            level = "info"
            text = f"reloaded in {event.duration_ms:.0f} ms [{event.start_method}]{cause}"
    return level, text


def _files(paths: tuple[str, ...]) -> str:
    shown = ", ".join(paths[:_MAX_FILES_SHOWN])
    return shown + (" ..." if len(paths) > _MAX_FILES_SHOWN else "")


def _exit_text(event: WorkerExited) -> tuple[str, str]:
    how = exit_how(event.code, event.signal)
    if event.is_expected:
        return "debug", f"worker {event.generation} exited ({how})"
    retry = f"; restarting in {event.retry_in_s:.1f} s" if event.retry_in_s is not None else ""
    if event.has_crash_page:
        retry = "; serving the error until the next save"
    return "error", f"worker {event.generation} stopped unexpectedly ({how}){retry}"
