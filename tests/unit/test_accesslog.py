"""Tests for devserve.accesslog: color decisions, line formats, filtering and batching."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from devserve.accesslog import LineReporter, should_color
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
    WebSocketClosed,
    WebSocketOpened,
    WorkerDraining,
    WorkerExited,
    WorkerReady,
    WorkerStarted,
)
from devserve.tui.stats import Stats


class CountingStream(io.StringIO):
    """A text stream that counts write calls."""

    def __init__(self, *, tty: bool = False) -> None:
        super().__init__()
        self.writes = 0
        self.tty = tty

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def isatty(self) -> bool:
        return self.tty


class BrokenStream(io.StringIO):
    """A stream whose writes fail like a closed pipe."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def _request(**changes: Any) -> RequestCompleted:
    fields: dict[str, Any] = {
        "method": "GET",
        "path": "/x",
        "status": 200,
        "duration_ms": 1.5,
        "bytes_in": 0,
        "bytes_out": 12,
        "client": "127.0.0.1:5000",
        "http_version": "1.1",
        "scheme": "http",
    }
    fields.update(changes)
    return RequestCompleted(**fields)


ERRORED = AppErrored(
    exc_type="ZeroDivisionError",
    message="division by zero",
    traceback="Traceback (most recent call last):\nZeroDivisionError: division by zero\n\n",
    frames=(),
    method="GET",
    path="/boom",
    response_started=False,
)
WS_OPENED = WebSocketOpened(path="/ws", client=("127.0.0.1", 5000), subprotocol="chat")
WS_CLOSED = WebSocketClosed(
    path="/ws", duration_ms=2500.0, messages_in=3, messages_out=4, close_code=1000
)
STARTED = ServerStarted(
    pid=1, urls=("http://127.0.0.1:8000", "http://[::1]:8000"), app="main:app", startup_ms=12.4
)


def _plain(**kwargs: Any) -> LineReporter:
    return LineReporter(CountingStream(), color=False, **kwargs)


# -- should_color ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "tty", "expected"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"FORCE_COLOR": "1"}, False, True),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),
        ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, False, False),
        ({"NO_COLOR": ""}, True, True),
        ({"FORCE_COLOR": ""}, False, False),
    ],
)
def test_should_color(environ: dict[str, str], tty: bool, expected: bool) -> None:
    assert should_color(CountingStream(tty=tty), environ) is expected


def test_should_color_without_isatty() -> None:
    class NoIsatty:
        pass

    assert should_color(NoIsatty(), {}) is False  # type: ignore[arg-type]


# -- format ------------------------------------------------------------------------------


def test_request_line_exact() -> None:
    line = _plain().format(_request())
    assert line == 'INFO:     127.0.0.1:5000 - "GET /x HTTP/1.1" 200 OK 1.5 ms 12 B'


@pytest.mark.parametrize(
    ("changes", "tail"),
    [
        ({"status": 404}, '"GET /x HTTP/1.1" 404 Not Found 1.5 ms 12 B'),
        ({"status": 599}, '"GET /x HTTP/1.1" 599 1.5 ms 12 B'),
        ({"duration_ms": 0.04, "bytes_out": 0}, '"GET /x HTTP/1.1" 200 OK 0.0 ms 0 B'),
        ({"method": "POST", "http_version": "1.0"}, '"POST /x HTTP/1.0" 200 OK 1.5 ms 12 B'),
        ({"query": "q=1&page=2"}, '"GET /x?q=1&page=2 HTTP/1.1" 200 OK 1.5 ms 12 B'),
    ],
)
def test_request_line_variants(changes: dict[str, Any], tail: str) -> None:
    line = _plain().format(_request(**changes))
    assert line == f"INFO:     127.0.0.1:5000 - {tail}"


def test_app_errored_line() -> None:
    line = _plain().format(ERRORED)
    assert line == (
        "ERROR:    Exception in ASGI application (GET /boom)\n"
        "Traceback (most recent call last):\nZeroDivisionError: division by zero"
    )


def test_app_errored_without_request() -> None:
    event = AppErrored("E", "m", "tb", (), method="", path="", response_started=False)
    assert _plain().format(event) == "ERROR:    Exception in ASGI application\ntb"


@pytest.mark.parametrize(
    ("level", "prefix"),
    [("info", "INFO:     "), ("warning", "WARNING:  "), ("error", "ERROR:    ")],
)
def test_log_line(level: str, prefix: str) -> None:
    assert _plain().format(LogLine(level, "hello")) == f"{prefix}hello"


def test_server_started_line() -> None:
    assert _plain().format(STARTED) == (
        "INFO:     devserve serving main:app on http://127.0.0.1:8000, http://[::1]:8000 "
        "(ready in 12 ms; Ctrl+C to quit)"
    )


def test_server_stopping_lines() -> None:
    reporter = _plain()
    assert reporter.format(ServerStopping(0)) == "INFO:     shutting down"
    assert reporter.format(ServerStopping(2)) == (
        "INFO:     shutting down, waiting for 2 request(s)"
    )


def test_websocket_opened_line() -> None:
    assert _plain().format(WS_OPENED) == (
        'INFO:     127.0.0.1:5000 - "WebSocket /ws" [chat] [accepted]'
    )
    anonymous = WebSocketOpened(path="/ws", client=None, subprotocol=None)
    assert _plain().format(anonymous) == 'INFO:     - - "WebSocket /ws" [accepted]'


def test_websocket_closed_line() -> None:
    assert _plain().format(WS_CLOSED) == (
        'INFO:     "WebSocket /ws" closed 1000 after 2.5 s (3 in, 4 out)'
    )


def test_access_log_off_hides_requests_only() -> None:
    reporter = _plain(access_log=False)
    assert reporter.format(_request()) is None
    assert reporter.format(WS_OPENED) is None
    assert reporter.format(WS_CLOSED) is None
    assert reporter.format(ERRORED) is not None
    assert reporter.format(LogLine("info", "x")) is not None


@pytest.mark.parametrize(
    ("min_level", "shown"),
    [
        ("trace", {"trace", "debug", "info", "warning", "error", "critical"}),
        ("debug", {"debug", "info", "warning", "error", "critical"}),
        ("info", {"info", "warning", "error", "critical"}),
        ("warning", {"warning", "error", "critical"}),
        ("error", {"error", "critical"}),
        ("critical", {"critical"}),
    ],
)
def test_log_level_filtering(min_level: str, shown: set[str]) -> None:
    reporter = _plain(log_level=min_level)
    levels = ["trace", "debug", "info", "warning", "error", "critical"]
    visible = {lvl for lvl in levels if reporter.format(LogLine(lvl, "m")) is not None}
    assert visible == shown


def test_errors_are_shown_at_any_level() -> None:
    assert _plain(log_level="critical").format(ERRORED) is not None


def test_unknown_levels_count_as_info() -> None:
    assert _plain(log_level="bogus").format(LogLine("info", "m")) is not None
    assert _plain(log_level="warning").format(LogLine("notice", "m")) is None


EVERY_EVENT: list[Event] = [
    _request(),
    _request(status=500),
    ERRORED,
    LogLine("info", "m"),
    STARTED,
    ServerStopping(1),
    WS_OPENED,
    WS_CLOSED,
]


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: type(e).__name__)
def test_plain_output_has_no_ansi(event: Event) -> None:
    line = _plain().format(event)
    assert line is not None
    assert "\x1b[" not in line


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: type(e).__name__)
def test_colored_output_has_ansi(event: Event) -> None:
    line = LineReporter(CountingStream(), color=True).format(event)
    assert line is not None
    assert "\x1b[" in line
    assert line.count("\x1b[0m") >= 1


def test_colored_request_line() -> None:
    line = LineReporter(CountingStream(), color=True).format(_request(status=404))
    assert line == (
        '\x1b[32mINFO\x1b[0m:     127.0.0.1:5000 - "GET /x HTTP/1.1" '
        "\x1b[33m404 Not Found\x1b[0m 1.5 ms 12 B"
    )


def test_colored_prefix_keeps_alignment() -> None:
    line = LineReporter(CountingStream(), color=True).format(LogLine("warning", "m"))
    assert line == "\x1b[33mWARNING\x1b[0m:  m"


# -- writing -----------------------------------------------------------------------------


def test_outside_event_loop_writes_immediately() -> None:
    stream = CountingStream()
    reporter = LineReporter(stream, color=False)
    reporter(_request())
    assert stream.writes == 1
    assert stream.getvalue() == 'INFO:     127.0.0.1:5000 - "GET /x HTTP/1.1" 200 OK 1.5 ms 12 B\n'
    reporter(LogLine("info", "second"))
    assert stream.writes == 2


def test_hidden_events_write_nothing() -> None:
    stream = CountingStream()
    reporter = LineReporter(stream, color=False, access_log=False, log_level="error")
    reporter(_request())
    reporter(LogLine("info", "hidden"))
    assert stream.writes == 0
    assert stream.getvalue() == ""


def test_inside_event_loop_batches_into_one_write() -> None:
    stream = CountingStream()
    reporter = LineReporter(stream, color=False, is_batched=True)

    async def burst() -> int:
        for i in range(5):
            reporter(_request(path=f"/{i}"))
        writes_before_yield = stream.writes
        await asyncio.sleep(0)
        return writes_before_yield

    assert asyncio.run(burst()) == 0
    assert stream.writes == 1
    lines = stream.getvalue().splitlines()
    assert [line.split('"')[1] for line in lines] == [f"GET /{i} HTTP/1.1" for i in range(5)]


def test_unbatched_writes_each_line_at_once_inside_the_loop() -> None:
    stream = CountingStream()
    reporter = LineReporter(stream, color=False)

    async def burst() -> int:
        for i in range(3):
            reporter(_request(path=f"/{i}"))
        return stream.writes  # before the loop gets a chance to run anything else

    assert asyncio.run(burst()) == 3


def test_each_loop_iteration_gets_its_own_write() -> None:
    stream = CountingStream()
    reporter = LineReporter(stream, color=False, is_batched=True)

    async def two_bursts() -> None:
        reporter(LogLine("info", "a"))
        reporter(LogLine("info", "b"))
        await asyncio.sleep(0)
        reporter(LogLine("info", "c"))
        await asyncio.sleep(0)

    asyncio.run(two_bursts())
    assert stream.writes == 2
    assert stream.getvalue() == "INFO:     a\nINFO:     b\nINFO:     c\n"


def test_flush_with_nothing_pending_writes_nothing() -> None:
    stream = CountingStream()
    LineReporter(stream, color=False).flush()
    assert stream.writes == 0


def test_write_errors_are_swallowed() -> None:
    reporter = LineReporter(BrokenStream(), color=False)
    reporter(_request())
    reporter(_request())


def test_closed_stream_is_swallowed() -> None:
    stream = CountingStream()
    stream.close()
    LineReporter(stream, color=False)(_request())


@pytest.mark.parametrize("event", [STARTED, ServerStopping(0)], ids=["started", "stopping"])
def test_info_lifecycle_lines_respect_log_level(event: Event) -> None:
    assert _plain(log_level="error").format(event) is None


# -- slow requests, lifecycle lines, the summary ------------------------------------------


def test_slow_request_is_marked_at_warning() -> None:
    reporter = _plain(slow_ms=100.0)
    assert reporter.format(_request(duration_ms=100.0)) == (
        'INFO:     127.0.0.1:5000 - "GET /x HTTP/1.1" 200 OK 100.0 ms 12 B'
    )
    assert reporter.format(_request(duration_ms=812.4)) == (
        'WARNING:  127.0.0.1:5000 - "GET /x HTTP/1.1" 200 OK 812.4 ms 12 B [slow]'
    )


def test_slow_mark_is_colored_on_a_terminal() -> None:
    line = LineReporter(CountingStream(), color=True, slow_ms=1.0).format(_request())
    assert line is not None
    assert line.endswith("12 B \x1b[1;33m[slow]\x1b[0m")


LIFECYCLE: list[tuple[Event, str | None]] = [
    (WorkerStarted(2, 41, "fork"), "DEBUG:    worker 2 starting (pid 41, fork)"),
    (WorkerReady(2, 41, 26.4, is_broken=False), "DEBUG:    worker 2 ready in 26 ms"),
    (
        WorkerReady(3, 42, 9.0, is_broken=True),
        "DEBUG:    worker 3 serving its startup error (pid 42)",
    ),
    (WorkerDraining(1, 40, "reload"), "DEBUG:    worker 1 draining (reload)"),
    (WorkerExited(1, 40, 0, None, is_expected=True), "DEBUG:    worker 1 exited (exit code 0)"),
    (
        WorkerExited(2, 41, None, "SIGKILL", is_expected=False, retry_in_s=0.4),
        "ERROR:    worker 2 stopped unexpectedly (killed by SIGKILL); restarting in 0.4 s",
    ),
    (
        WorkerExited(2, 41, 1, None, is_expected=False),
        "ERROR:    worker 2 stopped unexpectedly (exit code 1)",
    ),
    (ChangeDetected(("app/models.py",)), "DEBUG:    change detected: app/models.py"),
    (ChangeDetected(()), "DEBUG:    reload requested"),
    (
        ReloadFinished(2, 26.2, ("app/models.py",), "swap", "fork", ok=True),
        "INFO:     reloaded in 26 ms [fork] (app/models.py)",
    ),
    (
        ReloadFinished(2, 40.0, (), "restart", "spawn", ok=True),
        "INFO:     reloaded in 40 ms [spawn]",
    ),
    (
        ReloadFinished(3, 9.0, ("a.py", "b.py", "c.py", "d.py"), "swap", "fork", ok=False),
        "WARNING:  reload failed (a.py, b.py, c.py ...): serving the error until the next save",
    ),
    (AppOutput("stdout", "  printed by the app", 2), "  printed by the app"),
]


@pytest.mark.parametrize(("event", "line"), LIFECYCLE, ids=lambda v: type(v).__name__)
def test_lifecycle_lines(event: Event, line: str) -> None:
    assert _plain(log_level="debug").format(event) == line


def test_lifecycle_debug_lines_are_hidden_at_info() -> None:
    reporter = _plain()
    shown = [reporter.format(event) for event, _ in LIFECYCLE]
    assert [line.split(":")[0] if line else None for line in shown] == [
        None,
        None,
        None,
        None,
        None,
        "ERROR",
        "ERROR",
        None,
        None,
        "INFO",
        "INFO",
        "WARNING",
        "  printed by the app",
    ]


def test_finish_writes_the_summary_line() -> None:
    stream = CountingStream()
    reporter = LineReporter(stream, color=False, has_reloads=True)
    reporter.finish(Stats().summary())
    assert stream.getvalue() == "INFO:     summary: 0 requests, 0 errors, 0 reloads\n"


def test_finish_respects_the_log_level() -> None:
    stream = CountingStream()
    LineReporter(stream, color=False, log_level="warning").finish(Stats().summary())
    assert stream.getvalue() == ""
