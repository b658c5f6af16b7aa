"""The output side of a run: a `Session` that counts every event, then shows it.

Both entry points (single process and ``--reload``) open one session before anything is
printed and pass it wherever an event sink (``Callable[[Event], None]``) is expected: the
worker's ``emit``, the supervisor's ``report``, `devserve.sockets.prepare_tls`. For each
event the session first records it in its `devserve.tui.stats.Stats` (so figures are exact
even where the log samples or filters), then hands it to the output the ``--ui`` mode chose:

======== ================================================= =========================
mode     output (`UI`)                                      app output
======== ================================================= =========================
plain    `devserve.accesslog.LineReporter`, lines           inherited: straight to the
                                                            terminal (pdb works)
json     `devserve.jsonlog.JsonReporter`, JSON lines        captured: ``app_output``
tui      `devserve.tui.live.LiveUI`, the live dashboard       captured: ``AppOutput``
======== ================================================= =========================

`Session.close` ends the output with the exit summary, once the server had started.

A `UI` is anything with three methods: ``__call__(event)`` (show one event; the stats have
already counted it), ``flush()`` and ``finish(summary)`` (stop, restore what it changed,
print the summary). The dashboard reads ``session.stats`` for its figures.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from devserve.accesslog import reporter_for
from devserve.config import Config
from devserve.events import AppOutput, Event, ServerStarted, WorkerReady
from devserve.tui.feed import record_event
from devserve.tui.stats import Stats, StatsSummary
from devserve.uimode import ResolvedUI, resolve_for_terminal


class UI(Protocol):
    """An output mode: shows events, and the summary at the end."""

    def __call__(self, event: Event) -> None:
        """Show one event (already counted in the session's stats)."""
        ...

    def flush(self) -> None:
        """Write whatever is buffered."""
        ...

    def finish(self, summary: StatsSummary) -> None:
        """Stop, give back the terminal if it was taken, and print `summary`."""
        ...


@dataclass
class Session:
    """Counts each event in `stats`, then passes it to `ui`.

    Attributes:
        mode: the resolved ``--ui`` mode.
        ui: the output.
        stats: every figure of the run (the dashboard reads it; the summary comes from it).
        clock: monotonic seconds, the time events are counted at.
        has_started: a server became ready, so `close` prints a summary.
    """

    mode: ResolvedUI
    ui: UI
    stats: Stats = field(default_factory=Stats)
    clock: Callable[[], float] = time.monotonic
    has_started: bool = False

    @property
    def captures_output(self) -> bool:
        """Whether the app's stdout/stderr must come through the session as `AppOutput`."""
        return self.mode != "plain"

    def __call__(self, event: Event) -> None:
        """Count and show one event."""
        record_event(self.stats, event, self.clock())
        if not self.has_started and isinstance(event, ServerStarted | WorkerReady):
            self.has_started = True
        self.ui(event)

    def flush(self) -> None:
        """Write what the output buffered."""
        self.ui.flush()

    def close(self) -> None:
        """End the output: the exit summary if a server had started, else just a flush."""
        if self.has_started:
            self.ui.finish(self.stats.summary())
        else:
            self.ui.flush()


def make_ui(
    mode: ResolvedUI,
    config: Config,
    environ: Mapping[str, str],
    *,
    stream: TextIO,
    is_batched: bool,
    stats: Stats | None = None,
) -> UI:
    """Build the output for `mode` writing to `stream`.

    Args:
        mode: the resolved ``--ui`` mode.
        config: the run's configuration (log level, access log, ``--slow-ms``...).
        environ: the environment (colors: ``NO_COLOR``, ``FORCE_COLOR``).
        stream: standard output.
        is_batched: write one event-loop iteration's lines together (the supervisor; never
            single-process mode, whose loop runs the app).
        stats: the session's figures, which the dashboard shows.
    """
    if mode == "json":
        from devserve.jsonlog import JsonReporter  # noqa: PLC0415 - --ui json only

        return JsonReporter(stream, is_batched=is_batched)
    if mode == "tui":
        from devserve.tui.live import live_ui  # noqa: PLC0415 - rich only for the dashboard

        return live_ui(config, environ, stats=stats, stream=stream)
    return reporter_for(config, environ, stream=stream, is_batched=is_batched)


def open_session(
    config: Config,
    environ: Mapping[str, str],
    *,
    is_batched: bool,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> Session:
    """Resolve ``--ui`` for this process's terminal and open the session (prints nothing)."""
    out = sys.stdout if stdout is None else stdout
    mode = resolve_for_terminal(config.ui, environ, stdin=stdin, stdout=out)
    stats = Stats(windowed=mode == "tui")  # only the dashboard reads the windows
    ui = make_ui(mode, config, environ, stream=out, is_batched=is_batched, stats=stats)
    return Session(mode, ui, stats)


class LineCapture(io.TextIOBase):
    """A text stream that turns what is written into one `AppOutput` event per line.

    Args:
        stream: ``"stdout"`` or ``"stderr"``, the name put in the events.
        report: where the events go.
    """

    def __init__(self, stream: str, report: Callable[[Event], None]) -> None:
        super().__init__()
        self.name = stream
        self.report = report
        self._partial = ""

    def writable(self) -> bool:
        """Always writable."""
        return True

    def write(self, text: str) -> int:
        """Report every complete line of `text`; keep a trailing partial line."""
        data = self._partial + text
        *lines, self._partial = data.split("\n")
        for line in lines:
            self.report(AppOutput(self.name, line.removesuffix("\r")))
        return len(text)

    def flush(self) -> None:
        """Lines go out as they complete; a partial line waits for its newline or close."""

    def close(self) -> None:
        """Report a trailing partial line, then close."""
        if self._partial:
            partial, self._partial = self._partial, ""
            self.report(AppOutput(self.name, partial))
        super().close()


@contextmanager
def captured_output(report: Callable[[Event], None]) -> Iterator[None]:
    """Send ``print()`` and other writes to ``sys.stdout``/``sys.stderr`` to `report`.

    For single-process mode, where the app runs in this process: Python-level writes are
    captured, output written straight to file descriptors 1 and 2 (C extensions,
    subprocesses) is not. The original streams are restored on exit.
    """
    saved = sys.stdout, sys.stderr
    out, err = LineCapture("stdout", report), LineCapture("stderr", report)
    sys.stdout, sys.stderr = out, err
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        out.close()
        err.close()
