"""Tests for devserve.reporting and devserve.tui.feed: sessions count, then show."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

import devserve.reporting
from devserve.accesslog import LineReporter
from devserve.config import Config
from devserve.events import (
    AppErrored,
    AppOutput,
    Event,
    EventsDropped,
    LogLine,
    ReloadFinished,
    RequestCompleted,
    ServerStarted,
    WebSocketClosed,
    WebSocketOpened,
    WorkerReady,
)
from devserve.jsonlog import JsonReporter
from devserve.reporting import LineCapture, Session, captured_output, make_ui, open_session
from devserve.tui.feed import record_event
from devserve.tui.live import LiveUI
from devserve.tui.stats import Stats, StatsSummary


class TTYStream(io.StringIO):
    def isatty(self) -> bool:
        return True


class RecordingUI:
    """A UI that remembers what it was given, and what the stats said at that moment."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.seen: list[tuple[Event, int]] = []
        self.summaries: list[StatsSummary] = []
        self.flushes = 0

    def __call__(self, event: Event) -> None:
        self.seen.append((event, self.stats.summary().requests))

    def flush(self) -> None:
        self.flushes += 1

    def finish(self, summary: StatsSummary) -> None:
        self.summaries.append(summary)


def _request(status: int = 200, path: str = "/x", route: str | None = None) -> RequestCompleted:
    return RequestCompleted("GET", path, status, 2.0, 3, 4, "127.0.0.1:1", "1.1", "http", route)


def _error(*, started: bool, method: str = "GET") -> AppErrored:
    return AppErrored("E", "m", "tb", (), method, "/x" if method else "", started)


STARTED = ServerStarted(pid=1, urls=("http://127.0.0.1:8000",), app="main:app", startup_ms=5.0)


def _session() -> tuple[Session, RecordingUI]:
    stats = Stats()
    ui = RecordingUI(stats)
    return Session("plain", ui, stats, clock=lambda: 10.0), ui


# -- feeding the statistics ---------------------------------------------------------------


def test_requests_count_under_their_route_template() -> None:
    stats = Stats()
    record_event(stats, _request(route="/items/{id}", path="/items/3"), 1.0)
    record_event(stats, _request(path="/plain"), 1.0)
    routes = {row.route for row in stats.snapshot(1.0).slowest_routes}
    assert routes == {"/items/{id}", "/plain"}
    snapshot = stats.snapshot(1.0)
    assert (snapshot.total_requests, snapshot.bytes_in, snapshot.bytes_out) == (2, 6, 8)


def test_an_error_answered_with_500_counts_once() -> None:
    stats = Stats()
    record_event(stats, _error(started=False), 1.0)
    record_event(stats, _request(status=500), 1.0)
    assert stats.summary().errors == 1


def test_an_error_after_the_response_started_counts() -> None:
    stats = Stats()
    record_event(stats, _request(status=200), 1.0)
    record_event(stats, _error(started=True), 1.0)
    assert stats.summary().errors == 1
    assert stats.snapshot(1.0).errors_by_route == (("/x", 1),)


def test_a_lifespan_error_counts_without_a_route() -> None:
    stats = Stats()
    record_event(stats, _error(started=False, method=""), 1.0)
    assert stats.summary().errors == 1
    assert stats.snapshot(1.0).errors_by_route == ()


def test_websockets_reloads_and_drops_are_counted() -> None:
    stats = Stats()
    record_event(stats, WebSocketOpened("/ws", None, None), 1.0)
    record_event(stats, WebSocketOpened("/ws", None, None), 1.0)
    record_event(stats, WebSocketClosed("/ws", 1.0, 0, 0, 1000), 1.0)
    record_event(stats, ReloadFinished(2, 26.0, ("a.py",), "swap", "fork", ok=True), 2.0)
    record_event(stats, ReloadFinished(3, 9.0, ("a.py",), "swap", "fork", ok=False), 3.0)
    record_event(stats, EventsDropped(5), 3.0)
    record_event(stats, LogLine("info", "nothing to count"), 3.0)
    snapshot = stats.snapshot(3.0)
    assert snapshot.open_websockets == 1
    assert snapshot.reload_count == 2
    assert snapshot.last_reload is not None
    assert snapshot.last_reload.files == ("a.py",)
    assert not snapshot.last_reload.ok
    assert stats.summary().failed_reloads == 1
    assert snapshot.dropped == 5


# -- the session ----------------------------------------------------------------------------


def test_session_counts_before_the_ui_sees_the_event() -> None:
    session, ui = _session()
    session(_request())
    assert ui.seen == [(_request(), 1)]


def test_session_prints_a_summary_only_once_a_server_started() -> None:
    session, ui = _session()
    session.close()
    assert ui.summaries == []
    assert ui.flushes == 1
    session(STARTED)
    session(_request())
    session.close()
    assert [s.requests for s in ui.summaries] == [1]


def test_worker_ready_also_counts_as_started() -> None:
    session, ui = _session()
    session(WorkerReady(2, 10, 3.0, is_broken=False))
    session.close()
    assert len(ui.summaries) == 1


@pytest.mark.parametrize(("mode", "captures"), [("plain", False), ("json", True), ("tui", True)])
def test_output_is_captured_except_in_plain_mode(mode: str, captures: bool) -> None:
    session = Session(mode, RecordingUI(Stats()))  # type: ignore[arg-type]
    assert session.captures_output is captures


def test_make_ui_picks_the_reporter_of_each_mode() -> None:
    config = Config(slow_ms=50.0, log_level="debug")
    stream = io.StringIO()
    json_ui = make_ui("json", config, {}, stream=stream, is_batched=True)
    assert isinstance(json_ui, JsonReporter)
    assert json_ui.is_batched
    plain = make_ui("plain", config, {}, stream=stream, is_batched=False)
    assert isinstance(plain, LineReporter)
    assert (plain.slow_ms, plain.min_level, plain.color) == (50.0, 10, False)
    assert isinstance(make_ui("tui", config, {}, stream=stream, is_batched=False), LiveUI)


def test_make_ui_colors_on_a_terminal_unless_no_color() -> None:
    tty = TTYStream()
    colored = make_ui("plain", Config(), {}, stream=tty, is_batched=False)
    assert isinstance(colored, LineReporter)
    assert colored.color
    plain = make_ui("plain", Config(), {"NO_COLOR": "1"}, stream=tty, is_batched=False)
    assert isinstance(plain, LineReporter)
    assert not plain.color


def test_open_session_resolves_auto_from_the_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_make_ui(mode: str, *_args: Any, **_kwargs: Any) -> RecordingUI:
        return RecordingUI(Stats())  # the dashboard itself is tested in test_tui_*

    monkeypatch.setattr(devserve.reporting, "make_ui", fake_make_ui)
    environ = {"TERM": "xterm"}
    on_terminal = open_session(
        Config(), environ, is_batched=True, stdin=TTYStream(), stdout=TTYStream()
    )
    assert on_terminal.mode == "tui"
    piped = open_session(
        Config(), environ, is_batched=True, stdin=TTYStream(), stdout=io.StringIO()
    )
    assert piped.mode == "plain"
    closed = io.StringIO()
    closed.close()
    assert open_session(Config(), environ, is_batched=True, stdin=closed, stdout=closed).mode == (
        "plain"
    )


def test_a_json_session_writes_json_lines_and_the_summary() -> None:
    stream = io.StringIO()
    session = open_session(Config(ui="json"), {}, is_batched=False, stdout=stream)
    session(STARTED)
    session(_request())
    session.close()
    types = [json.loads(line)["type"] for line in stream.getvalue().splitlines()]
    assert types == ["server_started", "request_completed", "summary"]


# -- capturing the app's output in this process ------------------------------------------


def test_line_capture_reports_complete_lines_and_the_rest_on_close() -> None:
    seen: list[Event] = []
    capture = LineCapture("stdout", seen.append)
    assert capture.write("a\nb") == 3
    capture.write("c\r\n\n")
    capture.flush()
    assert seen == [AppOutput("stdout", "a"), AppOutput("stdout", "bc"), AppOutput("stdout", "")]
    capture.write("tail")
    capture.close()
    assert seen[-1] == AppOutput("stdout", "tail")


def test_captured_output_turns_print_into_events_and_restores_the_streams() -> None:
    seen: list[Event] = []
    saved = sys.stdout, sys.stderr
    with captured_output(seen.append):
        print("hello")
        print("oops", file=sys.stderr, end="")
    assert (sys.stdout, sys.stderr) == saved
    assert seen == [AppOutput("stdout", "hello"), AppOutput("stderr", "oops")]
