"""The live dashboard on a terminal: one timer, one write per frame, keys. Shell.

Theory of operation
-------------------
`LiveUI` is the supervisor's reporter: each event is reduced into `DashboardState` at
once (cheap, O(1)) and nothing is drawn. A single timer on the supervisor's event loop
fires about `FPS` times a second; a frame

1. takes the log items committed since the last frame,
2. renders them and the status region (or the full-screen dashboard) into one string
   with a private rich console writing to memory,
3. and writes that string to the terminal in one ``write``, wrapped in synchronized
   output (``CSI ? 2026 h/l``; terminals without it ignore it): cursor up to the top of
   the previous region, erase down, the new log lines (they scroll into the scrollback,
   so copy/paste and scrolling keep working), the new region.

Nothing is written when nothing changed. Figures that age (rates over the last 10 s) are
looked at once a second when no event came.

The terminal is restored (attributes, cursor, colors, main screen) by `close`, which the
caller runs in a ``finally``; Ctrl+Z restores it, stops the process and redraws on
``fg``; the editor (``e``) gets the terminal to itself while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from rich.cells import cell_len
from rich.text import Text

from devserve.config import Config
from devserve.events import Event
from devserve.summary import summary_text
from devserve.tui.dashview import dashboard
from devserve.tui.keys import Action, press
from devserve.tui.logitems import LogItem
from devserve.tui.paint import Painter
from devserve.tui.state import DashboardState, Screen
from devserve.tui.stats import Stats, StatsSummary
from devserve.tui.terminal import (
    ALT_SCREEN_OFF,
    ALT_SCREEN_ON,
    CLEAR_SCREEN,
    ERASE_DOWN,
    HOME,
    SYNC_OFF,
    SYNC_ON,
    Controls,
    Terminal,
    editor_command,
    has_display,
    signal_controls,
    visible,
)
from devserve.tui.view import Size, log_lines, status_region

FPS = 10
_LINK_ID = re.compile(r"\x1b\]8;id=\d+;")
AGE_REFRESH_S = 1.0
LINE_CACHE = 256


def live_ui(
    config: Config, environ: Mapping[str, str], *, stats: Stats | None, stream: TextIO
) -> LiveUI:
    """The dashboard for a run of `config` on `stream` (keys from stdin when a terminal)."""
    state = DashboardState(
        stats=stats,
        slow_ms=config.slow_ms,
        can_reload=config.reload,
        show_requests=config.access_log,
        root=os.getcwd(),
    )
    return LiveUI(state, Terminal.standard(stream), environ=environ)


class LiveUI:
    """Draw `state` on `terminal` and answer keys.

    Args:
        state: the model events are reduced into.
        terminal: where frames go and keys come from.
        environ: the environment (``EDITOR``/``VISUAL``, color settings).
        clock: monotonic seconds.
        fps: frames per second at most.
    """

    def __init__(
        self,
        state: DashboardState,
        terminal: Terminal,
        *,
        environ: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
        fps: int = FPS,
    ) -> None:
        self.state = state
        self.terminal = terminal
        self.environ = environ
        self.clock = clock
        self.interval_s = 1.0 / fps
        self.controls: Controls | None = None
        self.default_controls = signal_controls(can_reload=state.can_reload)
        self.frames = 0
        self.painter = Painter(environ)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._region: list[str] = []
        self._region_width = 0
        self._last_text = ""
        self._last_version = -1
        self._last_size = Size(0, 0)
        self._last_render_s = float("-inf")
        self._in_alt = False
        self._is_suspended = False
        self._is_closed = False

    # -- the reporter ----------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Reduce one event; drawing waits for the next frame.

        The first event seen on a running event loop starts the dashboard (events before
        that, e.g. the HTTPS lines, wait for its first frame).
        """
        self.state.apply(event, self.clock())
        if self._loop is None and not self._is_closed:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop()
                self.start(self.default_controls)

    def flush(self) -> None:
        """Draw what is pending; once the event loop is over, give the terminal back.

        The session ends a run that never served (the app or the supervisor failed before
        any worker was ready) with a flush instead of `finish`: the terminal is restored
        and the lines still pending are written, with no summary.
        """
        if self._loop is None or self._loop.is_closed() or not self._loop.is_running():
            self.close()
        else:
            self.frame()

    def finish(self, summary: StatsSummary) -> None:
        """Give the terminal back, then print the exit summary below the log."""
        self.close()
        line = summary_text(summary, has_reloads=self.state.can_reload)
        self.terminal.write(self.painter.render(Text(line, "bold")))

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, controls: Controls) -> None:
        """Take over the terminal on the running loop and start the frame timer."""
        self.controls = controls
        self._loop = asyncio.get_running_loop()
        self.terminal.enter()
        if self.terminal.in_fd is not None:
            self._loop.add_reader(self.terminal.in_fd, self._on_input)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            self._loop.add_signal_handler(signal.SIGTSTP, self._stop_process)
        self._schedule()
        self.frame()

    def close(self) -> None:
        """Final frame: the region goes, every unshown log line is written; terminal restored."""
        if self._is_closed:
            return
        self._is_closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._loop is not None and not self._loop.is_closed():
            if self.terminal.in_fd is not None:
                self._loop.remove_reader(self.terminal.in_fd)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.remove_signal_handler(signal.SIGTSTP)
        items = self.state.take_all()
        size = self.terminal.size()
        self.painter.resize(size)
        text = (ALT_SCREEN_OFF if self._in_alt else "") + self._erase_region(size.width)
        text += self.painter.render(*log_lines(items, size.width, self.state.root)) if items else ""
        self._in_alt = False
        self.terminal.write(SYNC_ON + text + SYNC_OFF)
        self.terminal.leave()

    def _schedule(self) -> None:
        assert self._loop is not None  # noqa: S101 - started
        self._timer = self._loop.call_later(self.interval_s, self._tick)

    def _tick(self) -> None:
        if self._is_closed:
            return
        self._schedule()
        try:
            self.frame()
        except Exception as exc:  # noqa: BLE001 - a drawing bug must not take the server down
            self.close()
            self.terminal.write(
                f"devserve: the dashboard stopped drawing ({exc!r}); still serving\n"
            )

    # -- frames ----------------------------------------------------------------------------

    def frame(self) -> bool:
        """Draw what changed since the last frame; return whether anything was written."""
        if self._is_suspended or self._is_closed:
            return False
        now = self.clock()
        size = self.terminal.size()
        items = self.state.take_log(now)
        is_aged = now - self._last_render_s >= AGE_REFRESH_S
        is_same = self.state.version == self._last_version and size == self._last_size
        if not items and is_same and not is_aged:
            return False
        self._last_version, self._last_render_s = self.state.version, now
        self.painter.resize(size)
        if self.state.screen is Screen.DASHBOARD:
            text = self._dashboard_text(now, size)
        else:
            text = self._log_text(items, now, size)
        self._last_size = size
        if not text:
            return False
        self.terminal.write(SYNC_ON + text + SYNC_OFF)
        self.frames += 1
        return True

    def _log_text(self, items: list[LogItem], now: float, size: Size) -> str:
        prefix = ""
        if self._in_alt:  # back from the dashboard: the main screen and its region return
            prefix, self._in_alt, self._last_text = ALT_SCREEN_OFF, False, ""
        region = self.painter.region_lines(status_region(self.state, now, size), size.width)
        region = region[-(size.height - 1) :]
        region_text = "\n".join(region)
        key = _LINK_ID.sub("", region_text)  # rich gives each link a new id per render
        if not items and not prefix and key == self._last_text and size == self._last_size:
            return ""
        log = self.painter.render(*log_lines(items, size.width, self.state.root)) if items else ""
        text = prefix + self._erase_region(size.width) + log + region_text
        self._region, self._region_width, self._last_text = region, size.width, key
        return text

    def _dashboard_text(self, now: float, size: Size) -> str:
        prefix = ""
        if not self._in_alt:
            prefix, self._in_alt, self._last_text = ALT_SCREEN_ON, True, ""
        lines = self.painter.render(dashboard(self.state, now, size)).split("\n")[:-1]
        screen = "\x1b[K\n".join(lines[: size.height]) + "\x1b[K"
        key = _LINK_ID.sub("", screen)
        if key == self._last_text and not prefix:
            return ""
        self._last_text = key
        return prefix + HOME + screen + ERASE_DOWN

    def _erase_region(self, width: int | None = None) -> str:
        """Move to the first row of the drawn region and erase from there down."""
        if not self._region:
            return ""
        width = width or self._region_width
        rows = len(self._region)
        if width < self._region_width:  # the terminal got narrower: old rows wrapped
            rows = sum(max(1, math.ceil(cell_len(visible(line)) / width)) for line in self._region)
        self._region = []
        return "\r" + (f"\x1b[{rows - 1}A" if rows > 1 else "") + ERASE_DOWN

    def redraw(self) -> None:
        """Draw everything again on the next frame (after the screen was cleared)."""
        self._last_text, self._last_version = "", -1

    # -- keys ------------------------------------------------------------------------------

    def _on_input(self) -> None:
        for key in self.terminal.read_keys():
            self.on_key(key)
        self.frame()

    def on_key(self, key: str) -> None:
        """Answer one key press (see `devserve.tui.keys`)."""
        action = press(self.state, key)
        controls = self.controls
        match action:
            case Action.QUIT if controls is not None:
                controls.quit()
            case Action.RELOAD if controls is not None and controls.reload is not None:
                controls.reload()
            case Action.CLEAR:
                self._region = []
                self.terminal.write(CLEAR_SCREEN)
                self.redraw()
            case Action.OPEN:
                self._open_browser()
            case Action.EDIT:
                self._spawn(self._edit())
            case _:
                pass

    def _open_browser(self) -> None:
        url = self.state.urls[0]
        if not has_display(self.environ):  # a text browser would take over this terminal
            self.state.notice(f"no graphical browser here: open {url} yourself", "warning")
            return
        import webbrowser  # noqa: PLC0415 - only when asked

        if self._loop is not None:
            self._loop.run_in_executor(None, webbrowser.open, url)

    async def _edit(self) -> None:
        where = self.state.error_location()
        if where is None:
            return
        editor = self.environ.get("VISUAL") or self.environ.get("EDITOR") or ""
        argv = editor_command(editor, where[0], where[1])
        if not argv:
            self.state.notice(f"set $EDITOR to open {where[0]}:{where[1]}", "warning")
            return
        self._suspend()
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, lambda: subprocess.run(argv, check=False))  # noqa: S603
        except OSError as exc:
            self.state.notice(f"could not run {argv[0]}: {exc.strerror or exc}", "error")
        finally:
            self._resume()

    def _spawn(self, coro: object) -> None:
        if self._loop is not None:
            task: asyncio.Task[None] = self._loop.create_task(coro)  # type: ignore[arg-type]
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    # -- giving the terminal away ------------------------------------------------------------

    def _suspend(self) -> None:
        """Erase the region and restore the terminal (for the editor, or Ctrl+Z)."""
        if self._is_suspended or self._is_closed:
            return
        self._is_suspended = True
        if self._loop is not None and self.terminal.in_fd is not None:
            self._loop.remove_reader(self.terminal.in_fd)
        text = (ALT_SCREEN_OFF if self._in_alt else "") + self._erase_region()
        self._in_alt = False
        self.terminal.write(text)
        self.terminal.leave()

    def _resume(self) -> None:
        if not self._is_suspended or self._is_closed:
            return
        self._is_suspended = False
        self.terminal.enter()
        if self._loop is not None and self.terminal.in_fd is not None:
            self._loop.add_reader(self.terminal.in_fd, self._on_input)
        self.redraw()
        self.frame()

    def _stop_process(self) -> None:
        """Ctrl+Z: give the terminal back, stop, and take it again on ``fg``."""
        self._suspend()
        os.kill(os.getpid(), signal.SIGSTOP)
        self._resume()
