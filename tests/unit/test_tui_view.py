"""Snapshot tests of the status region, the log and the dashboard at 80x24 and 160x48.

Each scenario (tests/tui_scenarios.py) is rendered into a recording rich Console and its
``export_text()`` is compared with ``tests/unit/snapshots/tui/<name>.txt``. After a change
to the view on purpose, regenerate them with ``DEVSERVE_UPDATE_SNAPSHOTS=1 pytest
tests/unit/test_tui_view.py`` and read the diff. Content checks below say what each
snapshot must show, so a regenerated snapshot cannot silently lose it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from rich.console import Console, Group, RenderableType

from devserve.tui.dashview import dashboard
from devserve.tui.keys import press
from devserve.tui.state import DashboardState
from devserve.tui.view import Size, fmt_bytes, fmt_ms, log_lines, status_region
from tests.tui_scenarios import SCENARIOS

SNAPSHOTS = Path(__file__).parent / "snapshots" / "tui"
SIZES = (Size(80, 24), Size(160, 48))


def render_text(renderable: RenderableType, size: Size) -> str:
    console = Console(
        file=io.StringIO(),
        record=True,
        width=size.width,
        height=size.height,
        force_terminal=True,
        color_system="truecolor",
        legacy_windows=False,
    )
    console.print(renderable)
    return console.export_text()


def inline_frame(state: DashboardState, now: float, size: Size) -> str:
    """What the terminal shows: the end of the log, then the region (the last rows)."""
    items = state.take_log(now)
    text = render_text(
        Group(*log_lines(items, size.width, state.root), status_region(state, now, size)), size
    )
    return "\n".join(text.splitlines()[-size.height :]) + "\n"


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("DEVSERVE_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no snapshot {path}: run with DEVSERVE_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), f"{name} differs from its snapshot"


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s.width}x{s.height}")
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_inline_region(scenario: str, size: Size) -> None:
    state, now = SCENARIOS[scenario]()
    text = inline_frame(state, now, size)
    lines = text.splitlines()
    assert all(len(line) <= size.width for line in lines)
    region = status_region(state, now, size)
    region_lines = render_text(region, size).splitlines()
    assert len(region_lines) < size.height, "the region must leave room for the log"
    assert "http://127.0.0.1:8000" in text
    assert " r reload " in region_lines[-1]
    assert " q quit " in region_lines[-1]
    check_snapshot(f"{scenario}-inline-{size.width}x{size.height}", text)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s.width}x{s.height}")
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_dashboard(scenario: str, size: Size) -> None:
    state, now = SCENARIOS[scenario]()
    press(state, "d")
    text = render_text(dashboard(state, now, size), size)
    lines = text.splitlines()
    assert len(lines) <= size.height, f"{len(lines)} lines on a {size.height}-line screen"
    assert all(len(line) <= size.width for line in lines)
    assert "req/s" in text
    assert "p95" in text
    assert "Route" in text
    check_snapshot(f"{scenario}-dashboard-{size.width}x{size.height}", text)


def test_idle_shows_ready_and_no_figures_yet() -> None:
    state, now = SCENARIOS["idle"]()
    text = inline_frame(state, now, Size(80, 24))
    assert "● serving" in text
    assert "ready in 48 ms" in text
    assert "slowest" not in text
    assert "p50 -" in text


def test_busy_shows_rates_percentiles_slow_and_collapsed_repeats() -> None:
    state, now = SCENARIOS["busy"]()
    text = inline_frame(state, now, Size(160, 48))
    assert "req/s" in text
    assert "p99" in text
    assert "reload 84 ms (app/models.py)" in text
    assert "812 ms" in text
    assert " slow" in text
    assert "(x3, max 2.4 ms)" in text
    assert "ws 1" in text
    assert "│ cart updated: 3 items" in text
    assert "slowest  /search" in text


def test_error_shows_the_500_then_the_users_frames_only() -> None:
    state, now = SCENARIOS["error"]()
    text = inline_frame(state, now, Size(160, 48))
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if "/checkout" in line and "500" in line)
    assert "KeyError: 'price'" in lines[at + 1]
    assert "app/routes.py:31 in checkout" in text
    assert "app/models.py:18 in cart_total" in text
    assert "starlette" not in text
    assert "t shows the full traceback" in text
    assert "5xx 1" in text


def test_reloading_and_broken_say_so() -> None:
    state, now = SCENARIOS["reloading"]()
    assert "reloading (app/routes.py, app/models.py)" in inline_frame(state, now, Size(160, 48))
    state, now = SCENARIOS["broken"]()
    text = inline_frame(state, now, Size(160, 48))
    assert "✗ broken" in text
    assert "SyntaxError at app/models.py:22: save a fix" in text
    assert "the app failed during import at app/models.py:22" in text
    assert "'(' was never closed" in text


def test_dashboard_sorts_by_the_chosen_column() -> None:
    state, now = SCENARIOS["busy"]()
    press(state, "d")
    by_count = render_text(dashboard(state, now, Size(160, 48)), Size(160, 48))
    press(state, "s")  # -> p95
    by_p95 = render_text(dashboard(state, now, Size(160, 48)), Size(160, 48))
    assert "Requests ▼" in by_count
    assert "p95 ▼" in by_p95
    first_route = [line.split()[0] for line in by_p95.splitlines() if line.startswith(" /")]
    assert first_route[0] == "/search"
    assert "reloads" in by_p95
    assert "84 ms  app/models.py  swap" in by_p95


def test_help_overlay_lists_every_key() -> None:
    state, now = SCENARIOS["idle"]()
    press(state, "h")
    text = inline_frame(state, now, Size(80, 24))
    for key in "rcoetdphq":
        assert f" {key}  " in text


def test_small_terminal_keeps_the_region_inside() -> None:
    state, now = SCENARIOS["error"]()
    size = Size(40, 10)
    press(state, "d")
    lines = render_text(dashboard(state, now, size), size).splitlines()
    assert len(lines) <= size.height


def test_formatting() -> None:
    assert fmt_ms(None) == "-"
    assert fmt_ms(0.421) == "0.42 ms"
    assert fmt_ms(8.06) == "8.1 ms"
    assert fmt_ms(120.4) == "120 ms"
    assert fmt_ms(1250) == "1.25 s"
    assert fmt_bytes(412) == "412 B"
    assert fmt_bytes(12_300) == "12.3 KB"
    assert fmt_bytes(4_000_000) == "4.0 MB"
