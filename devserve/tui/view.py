"""Draw the dashboard state with rich: log lines and the status region. Pure: no I/O, no clock.

Every function takes what it draws (the state, the time the frame is for, the size) and
returns rich renderables; `devserve.tui.live` turns them into one terminal write per
frame. Lines never wrap: each is cut to the terminal width with an ellipsis, so the shell
knows exactly how many rows the region takes. The full-screen dashboard and the help are
in `devserve.tui.dashview`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.style import Style
from rich.text import Span, Text

from devserve.events import AppErrored, StartupFailed
from devserve.tui.logitems import (
    ErrorBlock,
    FailureBlock,
    HiddenLine,
    LogItem,
    NoticeLine,
    OutputLine,
    RequestLine,
    user_frame,
)
from devserve.tui.state import DashboardState, Phase
from devserve.tui.stats import StatsSnapshot

COMPACT_FRAMES = 3
FAILURE_LINES = 12
STATUS_STYLES = {1: "dim", 2: "green", 3: "cyan", 4: "yellow", 5: "bold red"}
PHASE_GLYPHS = {
    Phase.STARTING: ("◌", "yellow"),
    Phase.SERVING: ("●", "green"),
    Phase.RELOADING: ("◐", "yellow"),
    Phase.BROKEN: ("✗", "bold red"),
    Phase.CRASHED: ("✗", "bold red"),
    Phase.STOPPING: ("■", "dim"),
}
NOTICE_STYLES = {
    "info": ("·", "blue"),
    "reload": ("↻", "green"),
    "ws": ("⇄", "magenta"),
    "warning": ("!", "yellow"),
    "error": ("✗", "red"),
    "critical": ("✗", "bold red"),
    "debug": ("·", "dim"),
    "trace": ("·", "dim"),
}
KEYS = (
    ("r", "reload"),
    ("c", "clear"),
    ("o", "open"),
    ("e", "edit"),
    ("d", "dashboard"),
    ("p", "pause"),
    ("h", "help"),
    ("q", "quit"),
)


class Size(NamedTuple):
    """A terminal size in cells."""

    width: int
    height: int


def fmt_ms(value: float | None) -> str:
    """A duration for people: ``0.42 ms``, ``8.1 ms``, ``120 ms``, ``1.25 s``."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.2f} ms"
    if value < 10:  # noqa: PLR2004
        return f"{value:.1f} ms"
    if value < 1000:  # noqa: PLR2004
        return f"{value:.0f} ms"
    return f"{value / 1000:.2f} s"


def fmt_bytes(value: int) -> str:
    """A size for people: ``412 B``, ``12.3 KB``, ``4.0 MB``."""
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":  # noqa: PLR2004
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - the loop returns


Part = tuple[str, str | Style]


def _line(*parts: str | Part) -> Text:
    """One line that is cut (never wrapped) at the width, built straight from its spans.

    Cheaper than appending piece by piece (each append re-scans the text): the region is
    built ten times a second.
    """
    plain: list[str] = []
    spans: list[Span] = []
    at = 0
    for part in parts:
        piece, style = (part, "") if isinstance(part, str) else part
        if style and piece:
            spans.append(Span(at, at + len(piece), style))
        plain.append(piece)
        at += len(piece)
    return Text("".join(plain), spans=spans, no_wrap=True, overflow="ellipsis")


def _count(count: int) -> tuple[str, str]:
    return (f" (x{count})" if count > 1 else "", "dim")


# -- log items -------------------------------------------------------------------------------


def log_item(item: LogItem, width: int, root: str = "") -> RenderableType:
    """One log item: a line, or a request line followed by its compact traceback.

    File names under ``root`` are shown relative to it.
    """
    result: RenderableType
    match item:
        case RequestLine():
            result = request_line(item, width)
            if item.error is not None:
                result = Group(result, compact_traceback(item.error, root=root))
        case ErrorBlock():
            head = _line(("  ✗ ", "bold red"), ("exception", "red"), _where(item.error))
            head.append(*_count(item.count))
            if item.is_full:
                result = Group(head, full_traceback(item.error))
            else:
                result = Group(head, compact_traceback(item.error, root=root))
        case FailureBlock():
            result = failure_block(item.failure, root)
        case OutputLine():
            text = Text.from_ansi(item.text, no_wrap=False)
            if item.stream == "stderr":
                text.stylize("red3")
            text.append(*_count(item.count))
            result = Text.assemble(("│ ", "dim"), text)
        case NoticeLine():
            glyph, style = NOTICE_STYLES.get(item.level, ("·", "blue"))
            result = Text.assemble((f"{glyph} ", style), (item.text, style))
            result.append(*_count(item.count))
        case HiddenLine():
            result = _line((f"… {item.count:,} {item.what} not shown", "dim italic"))
    return result


def _where(error: AppErrored) -> str:
    return f" in {error.method} {error.path}" if error.method else " in lifespan"


def request_line(item: RequestLine, width: int) -> Text:
    """``GET  /items/3  200  1.8 ms  412 B`` with the status colored by class."""
    status_style = STATUS_STYLES.get(item.status // 100, "")
    path_width = max(8, min(60, width - 50))
    path = item.path if len(item.path) <= path_width else item.path[: path_width - 1] + "…"
    duration_style = "bold yellow" if item.is_slow else ""
    parts: list[str | Part] = [
        (f"{item.method:<7}", "bold"),
        f"{path:<{path_width}} ",
        (f"{item.status} ", status_style),
        (f"{fmt_ms(item.duration_ms):>8}", duration_style),
        (f" {fmt_bytes(item.bytes_out):>8}", "dim"),
    ]
    if item.is_slow:
        parts.append((" slow", "yellow reverse"))
    if item.count > 1:
        parts.append((f" (x{item.count}, max {fmt_ms(item.max_ms)})", "dim"))
    return _line(*parts)


def short_path(filename: str, root: str) -> str:
    """``filename`` relative to ``root`` (ending in ``/``) when it is inside it."""
    return filename[len(root) :] if root and filename.startswith(root) else filename


def compact_traceback(error: AppErrored, frames: int = COMPACT_FRAMES, root: str = "") -> Text:
    """The exception and the user's own last ``frames`` frames, one or two lines each."""
    user = [f for f in error.frames if f.is_user_code] or list(error.frames)
    shown = user[-frames:]
    text = Text()
    message = f": {error.message}" if error.message else ""
    text.append(f"    {error.exc_type}{message}", "bold red")
    for frame in shown:
        text.append(f"\n      {short_path(frame.filename, root)}:{frame.lineno}", "cyan")
        text.append(f" in {frame.name}", "dim")
        if frame.line:
            text.append(f"\n        {frame.line}", "")
    if len(error.frames) > len(shown):
        text.append(f"\n      … t shows the full traceback ({len(error.frames)} frames)", "dim")
    return text


def full_traceback(error: AppErrored) -> Text:
    """The whole traceback as the worker formatted it."""
    return Text(error.traceback.rstrip() or f"{error.exc_type}: {error.message}", "red")


def failure_block(failure: StartupFailed, root: str = "") -> Text:
    """Broken code: where, then the end of the traceback (the user's frames)."""
    where = f" at {short_path(failure.filename, root)}:{failure.lineno}" if failure.filename else ""
    text = Text()
    text.append("✗ ", "bold red")
    text.append(f"the app failed during {failure.stage}{where}", "bold red")
    lines = failure.traceback.rstrip().splitlines()
    if len(lines) > FAILURE_LINES:
        text.append(f"\n  … {len(lines) - FAILURE_LINES} line(s) above", "dim")
        lines = lines[-FAILURE_LINES:]
    for line in lines:
        text.append(f"\n  {line}", "red")
    text.append("\n  save a fix: devserve reloads by itself", "dim")
    return text


# -- the status region ------------------------------------------------------------------------


def header_line(state: DashboardState, snap: StatsSnapshot) -> Text:
    """State glyph, URL(s) as links, app, cert trust, last reload (or what is broken)."""
    glyph, style = PHASE_GLYPHS[state.phase]
    parts: list[str | Part] = [(f"{glyph} ", style), (f"{state.phase.value:<9} ", style)]
    for url in state.urls or ("(starting)",):
        parts.append((url, Style(color="bright_blue", underline=True, link=url)))
        parts.append("  ")
    if state.app:
        parts.append((state.app, "bold"))
    if state.cert_trusted is not None:
        trusted = state.cert_trusted
        parts.append(("  🔒 CA trusted", "green") if trusted else ("  ⚠ CA not trusted", "yellow"))
    parts.append("  ")
    parts.append(_reload_status(state, snap))
    return _line(*parts)


def _reload_status(state: DashboardState, snap: StatsSnapshot) -> Part:
    if state.phase is Phase.RELOADING:
        files = ", ".join(state.reload_files[:2]) or "asked"
        return (f"reloading ({files})…", "yellow")
    if state.phase is Phase.BROKEN and state.failure is not None:
        failure = state.failure
        where = ""
        if failure.filename:
            where = f" at {short_path(failure.filename, state.root)}:{failure.lineno}"
        return (f"{failure.exc_type}{where}: save a fix", "bold red")
    last = snap.last_reload
    if last is None:
        ready = f" in {fmt_ms(state.startup_ms)}" if state.startup_ms else ""
        return ("ready" + ready, "dim")
    cause = ""
    if last.files:
        more = " …" if last.file_count > len(last.files[:2]) else ""
        cause = f" ({', '.join(last.files[:2])}{more})"
    return (f"reload {fmt_ms(last.duration_ms)}{cause}", "green" if last.ok else "red")


def figures_line(snap: StatsSnapshot, width: int = 160) -> Text:
    """req/s, p50/p95/p99 (last 10 s), 4xx/5xx, open websockets (and total when it fits)."""
    window = snap.last_10s
    status = snap.status
    parts: list[str | Part] = [
        (f"{window.rate_per_s:8.1f} req/s", "bold"),
        ("   p50 ", "dim"),
        (fmt_ms(window.p50_ms), ""),
        ("  p95 ", "dim"),
        (fmt_ms(window.p95_ms), ""),
        ("  p99 ", "dim"),
        (fmt_ms(window.p99_ms), ""),
        ("   4xx ", "dim"),
        (f"{status.client_error:,}", "yellow" if status.client_error else ""),
        ("  5xx ", "dim"),
        (f"{status.server_error:,}", "bold red" if status.server_error else ""),
        ("  ws ", "dim"),
        f"{snap.open_websockets}",
    ]
    if width >= 100:  # noqa: PLR2004 - room for the total
        parts.extend([("   requests ", "dim"), f"{snap.total_requests:,}"])
    return _line(*parts)


def slowest_line(snap: StatsSnapshot) -> Text | None:
    """The slowest routes by p95, or None before any request."""
    if not snap.slowest_routes:
        return None
    parts: list[str | Part] = [("   slowest ", "dim")]
    for row in snap.slowest_routes[:4]:
        parts.extend([f" {row.route} ", (fmt_ms(row.p95_ms), "yellow"), (" ·", "dim")])
    return _line(*parts[:-1])


def keys_line(state: DashboardState) -> Text:
    """The key help, and what is paused."""
    parts: list[str | Part] = []
    if state.is_paused:
        parts.extend([(" ⏸ log paused (p resumes) ", "black on yellow"), " "])
    for key, label in KEYS:
        if key == "r" and not state.can_reload:
            continue
        parts.extend([(f" {key}", "bold cyan"), (f" {label} ", "dim")])
    return _line(*parts)


def status_region(state: DashboardState, now_s: float, size: Size) -> RenderableType:
    """The live region: the open log item, a rule, the status lines and the key help."""
    snap = state.stats.snapshot(now_s)
    parts: list[RenderableType] = []
    if state.open_item is not None and not state.is_paused:
        parts.append(log_item(state.open_item, size.width, state.root))
    parts.append(_line(("─" * size.width, "dim")))
    parts.append(header_line(state, snap))
    parts.append(figures_line(snap, size.width))
    slowest = slowest_line(snap)
    if slowest is not None:
        parts.append(slowest)
    if state.show_help:
        parts.append(help_panel(state))
    parts.append(keys_line(state))
    return Group(*parts)


HELP = (
    ("r", "reload now (same as saving a file)"),
    ("c", "clear the screen and the log"),
    ("o", "open the app in the browser"),
    ("e", "open the last error's file:line in $EDITOR"),
    ("t", "show the last error's full traceback"),
    ("d", "full-screen dashboard (s sorts the route table)"),
    ("p", "pause / resume the log (figures keep counting)"),
    ("h", "this help"),
    ("q", "quit (graceful stop; Ctrl+C works too)"),
)


def help_panel(state: DashboardState) -> RenderableType:
    """The keys and what they do, in a box."""
    text = Text()
    for i, (key, what) in enumerate(HELP):
        if key == "r" and not state.can_reload:
            what = "reload (needs --reload)"  # noqa: PLW2901
        text.append(("\n" if i else "") + f" {key}  ", "bold cyan")
        text.append(what)
    return Panel(text, title="keys", title_align="left", border_style="cyan", expand=False)


def log_lines(items: Sequence[LogItem], width: int, root: str = "") -> list[RenderableType]:
    """Renderables for committed log items, in order."""
    return [log_item(item, width, root) for item in items]


__all__ = [
    "Size",
    "compact_traceback",
    "fmt_bytes",
    "fmt_ms",
    "header_line",
    "help_panel",
    "log_item",
    "log_lines",
    "status_region",
    "user_frame",
]
