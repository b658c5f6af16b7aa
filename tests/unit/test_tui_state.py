"""The dashboard model: collapsing, sampling, holding, errors joined to their 500, keys."""

from __future__ import annotations

from typing import Any

from devserve.events import (
    AppErrored,
    AppOutput,
    ChangeDetected,
    LogLine,
    ReloadFinished,
    RequestCompleted,
    ServerStarted,
    StartupFailed,
    TracebackFrame,
    WorkerExited,
    WorkerReady,
    WorkerStarted,
)
from devserve.tui.keys import Action, press
from devserve.tui.logitems import (
    ErrorBlock,
    FailureBlock,
    HiddenLine,
    NoticeLine,
    OutputLine,
    RequestLine,
)
from devserve.tui.state import DashboardState, Phase, Screen
from devserve.tui.stats import Stats


def request(path: str = "/", status: int = 200, duration_ms: float = 1.0, **more: Any) -> Any:
    return RequestCompleted(
        method=more.pop("method", "GET"),
        path=path,
        status=status,
        duration_ms=duration_ms,
        bytes_in=0,
        bytes_out=5,
        client="127.0.0.1:5000",
        http_version="1.1",
        scheme="http",
        **more,
    )


def error(path: str = "/boom", *, started: bool = False) -> AppErrored:
    return AppErrored(
        exc_type="ZeroDivisionError",
        message="division by zero",
        traceback="Traceback (most recent call last):\n  ...\nZeroDivisionError: x\n",
        frames=(
            TracebackFrame("/lib/starlette/routing.py", 70, "app", "await f()", is_user_code=False),
            TracebackFrame("/proj/app.py", 12, "boom", "return 1 / 0", is_user_code=True),
        ),
        method="GET",
        path=path,
        response_started=started,
    )


STARTED = ServerStarted(pid=1, urls=("http://127.0.0.1:8000",), app="app:app", startup_ms=40.0)


def test_identical_requests_collapse_into_the_open_item() -> None:
    state = DashboardState()
    for ms in (1.0, 3.0, 2.0):
        state.apply(request("/a", duration_ms=ms), 0.0)
    assert state.take_log(0.0) == []
    item = state.open_item
    assert isinstance(item, RequestLine)
    assert (item.count, item.duration_ms, item.max_ms) == (3, 2.0, 3.0)
    state.apply(request("/b"), 0.1)
    committed = state.take_log(0.1)
    assert len(committed) == 1
    assert isinstance(committed[0], RequestLine)
    assert committed[0].count == 3


def test_different_status_does_not_collapse() -> None:
    state = DashboardState()
    state.apply(request("/a"), 0.0)
    state.apply(request("/a", status=404), 0.0)
    assert [i.status for i in state.take_log(0.0) if isinstance(i, RequestLine)] == [200]


def test_sampling_hides_lines_but_stats_stay_exact() -> None:
    state = DashboardState(log_rate=10)
    for i in range(1000):
        state.apply(request(f"/p{i}"), 0.5)
    items = state.take_log(1.0)
    shown = [i for i in items if isinstance(i, RequestLine)]
    hidden = [i for i in items if isinstance(i, HiddenLine)]
    assert len(shown) <= 10  # the bucket holds one second's lines
    assert hidden
    assert hidden[0].count == 1000 - len(shown)
    assert state.stats.snapshot(1.0).total_requests == 1000


def test_sampling_never_hides_errors_or_slow_requests() -> None:
    state = DashboardState(log_rate=1, slow_ms=100)
    for i in range(50):
        state.apply(request(f"/p{i}"), 0.0)
    state.apply(request("/slow", duration_ms=250), 0.0)
    state.apply(request("/bad", status=503), 0.0)
    items = [*state.take_all()]
    paths = [i.path for i in items if isinstance(i, RequestLine)]
    assert "/slow" in paths
    assert "/bad" in paths
    slow = next(i for i in items if isinstance(i, RequestLine) and i.path == "/slow")
    assert slow.is_slow


def test_hidden_count_reported_at_most_once_a_second() -> None:
    state = DashboardState(log_rate=1)
    for i in range(5):
        state.apply(request(f"/a{i}"), 0.0)
    first = [i for i in state.take_log(0.0) if isinstance(i, HiddenLine)]
    for i in range(5):
        state.apply(request(f"/b{i}"), 0.2)
    assert not [i for i in state.take_log(0.3) if isinstance(i, HiddenLine)]
    later = [i for i in state.take_log(1.5) if isinstance(i, HiddenLine)]
    assert first
    assert later


def test_error_before_response_is_joined_to_its_500() -> None:
    state = DashboardState()
    state.apply(error(), 0.0)
    state.apply(request("/boom", status=500), 0.01)
    item = state.open_item
    assert isinstance(item, RequestLine)
    assert item.error is not None
    assert item.error.exc_type == "ZeroDivisionError"
    assert state.error_location() == ("/proj/app.py", 12)
    # counted once: the 500 is the error (the session's feed skips the exception)
    assert state.stats.snapshot(0.1).total_errors == 1


def test_error_without_its_request_is_logged_alone_after_a_while() -> None:
    state = DashboardState()
    state.apply(error(), 0.0)
    assert state.take_log(0.1) == []
    state.take_log(1.0)
    assert isinstance(state.open_item, ErrorBlock)


def test_error_after_response_started_is_its_own_block() -> None:
    state = DashboardState()
    state.apply(error(started=True), 0.0)
    assert isinstance(state.open_item, ErrorBlock)
    assert state.stats.snapshot(0.0).total_errors == 1


def test_pause_holds_lines_and_counts_overflow() -> None:
    state = DashboardState(hold=5)
    press(state, "p")
    for i in range(20):
        state.apply(request(f"/x{i}", status=500), 0.0)
    assert state.take_log(0.0) == []
    press(state, "p")
    items = state.take_log(0.0)
    assert isinstance(items[0], HiddenLine)
    assert items[0].what == "lines"
    assert len(items) == 6


def test_dashboard_holds_the_log_too() -> None:
    state = DashboardState()
    assert press(state, "d") is None
    assert state.screen is Screen.DASHBOARD
    state.apply(request("/a"), 0.0)
    state.apply(request("/b"), 0.0)
    assert state.take_log(0.0) == []
    press(state, "\x1b")
    assert state.screen is Screen.LOG
    assert len(state.take_log(0.0)) == 1


def test_phases_follow_the_lifecycle() -> None:
    state = DashboardState()
    assert state.phase is Phase.STARTING
    state.apply(STARTED, 0.0)
    assert state.phase is Phase.SERVING
    assert state.urls == ("http://127.0.0.1:8000",)
    state.apply(ChangeDetected(("app.py",)), 1.0)
    assert state.phase is Phase.RELOADING
    assert state.reload_files == ("app.py",)
    failure = StartupFailed("import", "SyntaxError", "bad", "tb", "/proj/app.py", 3)
    state.apply(failure, 1.1)
    state.apply(ReloadFinished(2, 30.0, ("app.py",), "swap", "fork", ok=False), 1.1)
    assert state.phase is Phase.BROKEN
    assert state.error_location() == ("/proj/app.py", 3)
    state.apply(ChangeDetected(("app.py",)), 2.0)
    state.apply(ReloadFinished(3, 25.0, ("app.py",), "swap", "fork", ok=True), 2.1)
    assert state.phase is Phase.SERVING
    assert state.failure is None
    state.apply(WorkerExited(3, 10, code=1, signal=None, is_expected=False, retry_in_s=0.1), 3.0)
    assert state.phase is Phase.CRASHED
    state.apply(WorkerStarted(4, 11, "fork"), 3.1)
    assert state.phase is Phase.STARTING
    state.apply(WorkerReady(4, 11, 30.0, is_broken=False), 3.2)
    assert state.phase is Phase.SERVING
    items = state.take_all()
    assert any(isinstance(i, FailureBlock) for i in items)
    assert any(isinstance(i, NoticeLine) and "reloaded in 25 ms" in i.text for i in items)
    crash = "worker 3 stopped unexpectedly (exit code 1); restarting in 0.1 s"
    assert any(isinstance(i, NoticeLine) and i.text == crash for i in items)


def test_a_crash_page_is_announced_in_the_log() -> None:
    state = DashboardState()
    state.apply(WorkerExited(1, 10, None, "SIGSEGV", is_expected=False, has_crash_page=True), 0)
    state.apply(WorkerExited(2, 11, 3, None, is_expected=False), 0)
    texts = [i.text for i in state.take_all() if isinstance(i, NoticeLine)]
    assert texts == [
        "worker 1 stopped unexpectedly (killed by SIGSEGV); serving the error until the next save",
        "worker 2 stopped unexpectedly (exit code 3)",
    ]


def test_cert_trust_is_read_from_the_https_lines() -> None:
    state = DashboardState()
    state.apply(LogLine("warning", "the CA is not trusted yet: run 'devserve cert trust'"), 0)
    assert state.cert_trusted is False
    state.apply(LogLine("info", "the CA is trusted by this system"), 0)
    assert state.cert_trusted is True


def test_app_output_collapses_and_is_sampled() -> None:
    state = DashboardState(log_rate=2)
    for _ in range(3):
        state.apply(AppOutput("stdout", "same"), 0.0)
    assert isinstance(state.open_item, OutputLine)
    assert state.open_item.count == 3
    for i in range(10):
        state.apply(AppOutput("stderr", f"line {i}"), 0.0)
    hidden = [i for i in state.take_all() if isinstance(i, HiddenLine)]
    assert hidden
    assert hidden[0].what == "output lines"


def test_shared_stats_are_not_counted_twice() -> None:
    stats = Stats()
    state = DashboardState(stats=stats)
    state.apply(request(), 0.0)
    assert stats.snapshot(0.0).total_requests == 0  # the session counts, not the state


def test_no_access_log_still_shows_errors() -> None:
    state = DashboardState(show_requests=False)
    state.apply(request("/ok"), 0.0)
    assert state.open_item is None
    state.apply(request("/bad", status=500), 0.0)
    assert isinstance(state.open_item, RequestLine)


def test_keys() -> None:
    state = DashboardState(can_reload=False)
    assert press(state, "q") is Action.QUIT
    assert press(state, "r") is None
    assert press(state, "o") is None  # not serving yet
    assert press(state, "e") is None  # no error yet
    state = DashboardState()
    state.apply(STARTED, 0.0)
    assert press(state, "R") is Action.RELOAD
    assert press(state, "o") is Action.OPEN
    assert press(state, "c") is Action.CLEAR
    assert state.open_item is None
    state.apply(error(started=True), 0.0)
    assert press(state, "e") is Action.EDIT
    assert press(state, "t") is None
    assert isinstance(state.open_item, ErrorBlock)
    assert state.open_item.is_full
    press(state, "h")
    assert state.show_help
    press(state, "d")
    before = state.sort_key
    press(state, "s")
    assert state.sort_key != before
    assert press(state, "x") is None
