"""The full-screen dashboard (the ``d`` key). Pure: no I/O, no clock.

One screen, cut to the terminal height: the status line, sparklines of requests per
second and p95 latency over the last minute, totals, the route table sorted by the
column the ``s`` key picks, the recent reloads and the errors by route.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich import box
from rich.console import Console, ConsoleOptions, Group, JustifyMethod, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from devserve.tui.state import DashboardState
from devserve.tui.stats import LONG_WINDOW_S, StatsSnapshot
from devserve.tui.view import Size, fmt_bytes, fmt_ms, header_line, help_panel

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], width: int) -> str:
    """Draw ``values`` as a one-line bar chart of exactly ``width`` characters.

    The most recent ``width`` values are kept, right-aligned and left-padded with spaces. Bars
    scale from 0 (``▁``) to the largest value (``█``); negatives count as 0; None and non-finite
    values are drawn as a space.

    Raises:
        ValueError: If ``width`` is negative.
    """
    if width < 0:
        raise ValueError(f"width must be >= 0, got {width}")
    tail = list(values[max(0, len(values) - width) :]) if width else []
    finite = [max(0.0, v) for v in tail if v is not None and math.isfinite(v)]
    peak = max(finite, default=0.0)
    top = len(SPARK_BLOCKS) - 1
    chars = []
    for value in tail:
        if value is None or not math.isfinite(value):
            chars.append(" ")
        elif peak <= 0 or value <= 0:
            chars.append(SPARK_BLOCKS[0])
        else:
            chars.append(SPARK_BLOCKS[min(top, max(0, math.ceil(value * (top + 1) / peak) - 1))])
    return "".join(chars).rjust(width)


RELOAD_ROWS = 3
#: Rows the dashboard uses besides the route table's body (see `dashboard`).
FIXED_ROWS = 11
SORT_LABELS = {
    "route": "Route",
    "count": "Requests",
    "errors": "Errors",
    "mean": "Mean",
    "p95": "p95",
    "max": "Max",
}


def _spark(label: str, values: list[float | None], now: str, peak: str, width: int) -> Text:
    spark_width = max(10, min(LONG_WINDOW_S, width - 40))
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {label:<12}", "bold")
    text.append(sparkline(values, spark_width), "cyan")
    text.append("  now ", "dim")
    text.append(now)
    text.append("  peak ", "dim")
    text.append(peak)
    return text


def sparklines(state: DashboardState, now_s: float, width: int) -> list[Text]:
    """req/s and p95 over the last minute, one line each."""
    rates = state.stats.rate_series(now_s)
    p95s = state.stats.p95_series(now_s)
    finite = [v for v in p95s if v is not None]
    return [
        _spark(
            "req/s",
            [float(v) for v in rates],
            f"{rates[-2] if len(rates) > 1 else rates[-1]:.0f}",
            f"{max(rates, default=0):.0f}",
            width,
        ),
        _spark(
            "p95",
            p95s,
            fmt_ms(next((v for v in reversed(p95s) if v is not None), None)),
            fmt_ms(max(finite) if finite else None),
            width,
        ),
    ]


def totals_line(snap: StatsSnapshot) -> Text:
    """All-time counts, bytes and gauges."""
    status = snap.status
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {snap.total_requests:,} requests", "bold")
    errors = f"{snap.total_errors:,} error" + ("" if snap.total_errors == 1 else "s")
    text.append(f"  {errors}", "bold red" if snap.total_errors else "dim")
    for label, value in (
        ("2xx", status.success),
        ("3xx", status.redirection),
        ("4xx", status.client_error),
        ("5xx", status.server_error),
    ):
        text.append(f"  {label} ", "dim")
        text.append(f"{value:,}")
    text.append("  in ", "dim")
    text.append(fmt_bytes(snap.bytes_in))
    text.append("  out ", "dim")
    text.append(fmt_bytes(snap.bytes_out))
    text.append("  ws ", "dim")
    text.append(str(snap.open_websockets))
    text.append("  reloads ", "dim")
    text.append(str(snap.reload_count))
    if snap.dropped:
        text.append(f"  {snap.dropped:,} events dropped", "yellow")
    return text


def route_table(state: DashboardState, rows: int, width: int) -> Table:
    """The routes sorted by ``state.sort_key``, at most ``rows`` of them."""
    table = Table(box=box.SIMPLE_HEAD, expand=False, pad_edge=False, padding=(0, 2))
    for key, label in SORT_LABELS.items():
        marker = " ▼" if key == state.sort_key else ""
        justify: JustifyMethod = "left" if key == "route" else "right"
        style = "bold cyan" if marker else "bold"
        table.add_column(label + marker, justify=justify, header_style=style, no_wrap=True)
    ordered = state.stats.routes.routes_sorted(state.sort_key, state.sort_key != "route")
    route_width = max(10, width - 50)
    for row in ordered[: max(0, rows)]:
        route = row.route if len(row.route) <= route_width else row.route[: route_width - 1] + "…"
        table.add_row(
            route,
            f"{row.count:,}",
            Text(f"{row.errors:,}", "bold red" if row.errors else "dim"),
            fmt_ms(row.mean_ms),
            fmt_ms(row.p95_ms),
            fmt_ms(row.max_ms),
        )
    if len(ordered) > rows:
        table.caption = f"{len(ordered) - rows} more route(s)"
    return table


def reload_lines(state: DashboardState) -> list[Text]:
    """The last few reloads: how long, what changed, how."""
    lines = []
    for record in reversed(state.stats.reloads[-RELOAD_ROWS:]):
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {fmt_ms(record.duration_ms):>8}", "green" if record.ok else "red")
        files = ", ".join(record.files[:3]) or "(asked)"
        text.append(f"  {files}")
        text.append(f"  {record.strategy}" + ("" if record.ok else "  failed"), "dim")
        lines.append(text)
    return lines


class Cropped:
    """A renderable cut to its first ``height`` lines (the dashboard on a small screen)."""

    def __init__(self, renderable: RenderableType, height: int) -> None:
        self.renderable = renderable
        self.height = height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Render, then keep the lines that fit."""
        lines = console.render_lines(self.renderable, options.update(height=None), pad=False)
        newline = Segment.line()
        for line in lines[: self.height]:
            yield from line
            yield newline


def dashboard(state: DashboardState, now_s: float, size: Size) -> RenderableType:
    """The whole screen at ``size``; the route table gets the rows that are left."""
    snap = state.stats.snapshot(now_s)
    reloads = reload_lines(state)
    title = Text(" reloads", "bold") if reloads else None
    used = FIXED_ROWS + (len(reloads) + 1 if reloads else 0)
    table_rows = max(1, size.height - used)
    parts: list[RenderableType] = [
        header_line(state, snap),
        Text(""),
        *sparklines(state, now_s, size.width),
        Text(""),
        totals_line(snap),
        route_table(state, table_rows, size.width),
    ]
    if title is not None:
        parts.extend([title, *reloads])
    if state.show_help:
        parts.append(help_panel(state))
    footer = Text(no_wrap=True, overflow="ellipsis")
    for key, label in (
        ("s", f"sort ({SORT_LABELS[state.sort_key]})"),
        ("d", "back to the log"),
        ("h", "help"),
        ("q", "quit"),
    ):
        footer.append(f" {key}", "bold cyan")
        footer.append(f" {label} ", "dim")
    parts.append(footer)
    return Cropped(Group(*parts), size.height)
