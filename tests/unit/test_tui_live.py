"""The dashboard shell without a terminal: what each frame writes, and when it writes nothing."""

from __future__ import annotations

import re

from devserve.events import RequestCompleted, ServerStarted
from devserve.tui.live import LiveUI
from devserve.tui.state import DashboardState
from devserve.tui.stats import Stats
from devserve.tui.terminal import (
    ALT_SCREEN_OFF,
    ALT_SCREEN_ON,
    SHOW_CURSOR,
    SYNC_OFF,
    SYNC_ON,
    Controls,
    Terminal,
    editor_command,
    has_display,
    visible,
)
from devserve.tui.view import Size

DEFAULT_SIZE = Size(100, 30)


class FakeTerminal(Terminal):
    def __init__(self, size: Size = DEFAULT_SIZE) -> None:
        super().__init__(out_fd=-1, in_fd=None)
        self.writes: list[str] = []
        self.fixed_size = size
        self.left = 0

    def size(self) -> Size:
        return self.fixed_size

    def write(self, text: str) -> None:
        self.writes.append(text)

    def leave(self, *, alt_screen: bool = False) -> None:
        self.left += 1
        super().leave(alt_screen=alt_screen)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def request(path: str, status: int = 200) -> RequestCompleted:
    return RequestCompleted("GET", path, status, 1.5, 0, 5, "127.0.0.1:1", "1.1", "http")


def make_ui() -> tuple[LiveUI, FakeTerminal, Clock]:
    terminal, clock = FakeTerminal(), Clock()
    ui = LiveUI(DashboardState(), terminal, environ={"NO_COLOR": "1"}, clock=clock)
    ui(ServerStarted(pid=1, urls=("http://127.0.0.1:8000",), app="app:app", startup_ms=5.0))
    return ui, terminal, clock


def test_a_frame_is_one_synchronized_write() -> None:
    ui, terminal, _ = make_ui()
    assert ui.frame()
    assert len(terminal.writes) == 1
    frame = terminal.writes[0]
    assert frame.startswith(SYNC_ON)
    assert frame.endswith(SYNC_OFF)
    assert "http://127.0.0.1:8000" in visible(frame)


def test_nothing_changed_writes_nothing() -> None:
    ui, terminal, clock = make_ui()
    ui.frame()
    assert not ui.frame()
    clock.now += 0.5
    assert not ui.frame()
    clock.now += 2  # figures age: looked at again, but the same text is not written again
    assert not ui.frame()
    assert len(terminal.writes) == 1


def test_a_burst_of_events_is_one_frame() -> None:
    ui, terminal, _ = make_ui()
    ui.frame()
    for i in range(2000):
        ui(request(f"/p{i}"))
    assert ui.frame()
    assert len(terminal.writes) == 2
    text = visible(terminal.writes[1])
    assert "/p0 " in text
    assert "not shown" in text or "/p1999" in text


def test_each_frame_erases_the_previous_region_first() -> None:
    ui, terminal, _ = make_ui()
    ui.frame()
    rows = visible(terminal.writes[0]).count("\n") + 1
    ui(request("/next"))
    ui.frame()
    second = terminal.writes[1].removeprefix(SYNC_ON)
    assert second.startswith(f"\r\x1b[{rows - 1}A\x1b[J")


def test_narrower_terminal_erases_the_wrapped_rows() -> None:
    ui, terminal, _ = make_ui()
    ui(request("/a"))
    ui.frame()
    region_rows = len(ui._region)
    terminal.fixed_size = Size(50, 30)
    ui(request("/b"))
    ui.frame()
    moved = re.match(r"\r\x1b\[(\d+)A", terminal.writes[-1].removeprefix(SYNC_ON))
    assert moved is not None
    assert int(moved.group(1)) + 1 > region_rows  # 100-wide rows take two 50-wide rows


def test_dashboard_uses_the_alternate_screen_and_comes_back() -> None:
    ui, terminal, _ = make_ui()
    ui.frame()
    ui.on_key("d")
    ui.frame()
    assert ALT_SCREEN_ON in terminal.writes[-1]
    assert "Route" in visible(terminal.writes[-1])
    ui.on_key("d")
    ui.frame()
    assert ALT_SCREEN_OFF in terminal.writes[-1]


def test_keys_reach_the_controls() -> None:
    ui, _, _ = make_ui()
    asked: list[str] = []
    ui.controls = Controls(quit=lambda: asked.append("quit"), reload=lambda: asked.append("r"))
    ui.on_key("r")
    ui.on_key("q")
    assert asked == ["r", "quit"]


def test_close_writes_what_is_left_and_restores() -> None:
    ui, terminal, _ = make_ui()
    ui.frame()
    ui(request("/last"))
    ui.close()
    assert terminal.left == 1
    assert "/last" in visible("".join(terminal.writes[1:]))
    assert terminal.writes[-1].endswith(SHOW_CURSOR)
    ui.close()  # twice is harmless
    assert terminal.left == 1


def test_finish_prints_the_summary_after_restoring() -> None:
    terminal, clock = FakeTerminal(), Clock()
    stats = Stats()
    stats.record_request(
        100.0, method="GET", route="/", status=200, duration_ms=2, bytes_in=0, bytes_out=1
    )
    ui = LiveUI(DashboardState(stats=stats), terminal, environ={}, clock=clock)
    ui.finish(stats.summary())
    assert "summary: 1 request, 0 errors" in visible(terminal.writes[-1])
    assert terminal.left == 1


def test_editor_commands() -> None:
    assert editor_command("vim", "a.py", 3) == ["vim", "+3", "a.py"]
    assert editor_command("/usr/bin/nano -w", "a.py", 3) == ["/usr/bin/nano", "-w", "+3", "a.py"]
    assert editor_command("code --wait", "a.py", 3) == ["code", "--wait", "--goto", "a.py:3"]
    assert editor_command("subl", "a.py", 3) == ["subl", "a.py:3"]
    assert editor_command("pycharm", "a.py", 3) == ["pycharm", "--line", "3", "a.py"]
    assert editor_command("ed", "a.py", 3) == ["ed", "a.py"]
    assert editor_command("", "a.py", 3) == []


def test_flush_after_the_loop_ended_restores_the_terminal() -> None:
    ui, terminal, _ = make_ui()
    ui(request("/pending"))
    ui.flush()  # no loop is running: the run is over
    assert terminal.left == 1
    assert "/pending" in visible("".join(terminal.writes))


def test_a_failing_frame_gives_the_terminal_back_once() -> None:
    ui, terminal, _ = make_ui()

    def broken() -> bool:
        raise RuntimeError("bug")

    ui.frame = broken  # type: ignore[method-assign]
    ui._schedule = lambda: None  # type: ignore[method-assign]
    ui._tick()
    ui._tick()  # closed: nothing more
    assert terminal.left == 1
    assert sum("stopped drawing" in w for w in terminal.writes) == 1


def test_browser_only_where_there_is_a_display() -> None:
    assert has_display({}, "darwin")
    assert has_display({}, "win32")
    assert has_display({"DISPLAY": ":0"}, "linux")
    assert has_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert not has_display({}, "linux")
    ui, _, _ = make_ui()  # environ has no DISPLAY: says so instead of starting lynx
    ui.on_key("o")
    assert "open http://127.0.0.1:8000 yourself" in str(ui.state.open_item)
