"""What the live dashboard shows, reduced from events. Pure: no I/O, no clock, no rich.

Theory of operation
-------------------
The shell (`devserve.tui.live`) calls `DashboardState.apply` once per event with the
monotonic time it read, and about ten times a second takes the log items committed since
the last frame (`take_log`) and renders them with the status region (`devserve.tui.view`).

The request log is kept readable under any load, while `Stats` stays exact:

- **Collapsing**: an item equal to the previous one (same request line, same app output
  line, same error) is not repeated; the previous one's count grows, shown as ``(x12)``.
  The newest item stays *open* (drawn in the live region) until a different one arrives,
  so its count can still grow; then it is committed to the scrollback.
- **Sampling**: new request lines cost one token from a bucket refilled at ``log_rate``
  per second. Without a token the line is not shown and counted; the count is logged as
  ``N requests not shown`` at most once a second. Errors, slow requests and everything
  that is not a request line are always shown.
- **Holding**: while the log is paused or the full-screen dashboard is up, committed items
  wait in a bounded queue; what overflows it is counted and reported when the log resumes.

An app exception raised before the response is reported (`AppErrored`) just before its
500 (`RequestCompleted`): the two are joined into one log item, the request line followed
by the traceback. An error whose request does not follow within `ERROR_JOIN_S` is logged
alone.
"""

from __future__ import annotations

import enum
from collections import deque

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
    WorkerExited,
    WorkerReady,
    WorkerStarted,
)
from devserve.tui.feed import record_event
from devserve.tui.logitems import (
    ErrorBlock,
    FailureBlock,
    HiddenLine,
    LogItem,
    NoticeLine,
    OutputLine,
    RequestLine,
    bump,
    crash_notice,
    same,
    user_frame,
)
from devserve.tui.routes import RouteSortKey
from devserve.tui.stats import Stats

DEFAULT_LOG_RATE = 200
DEFAULT_HOLD = 2000
ERROR_JOIN_S = 0.5
HIDDEN_REPORT_S = 1.0
SORT_KEYS: tuple[RouteSortKey, ...] = ("count", "p95", "max", "mean", "errors", "route")
_SERVER_ERROR = 500


class Phase(enum.Enum):
    """What the server is doing, as the state glyph shows it."""

    STARTING = "starting"
    SERVING = "serving"
    RELOADING = "reloading"
    BROKEN = "broken"
    CRASHED = "crashed"
    STOPPING = "stopping"


class Screen(enum.Enum):
    """Which view the terminal shows."""

    LOG = "log"
    DASHBOARD = "dashboard"


class DashboardState:
    """Everything the view renders; written only through `apply` and the key methods.

    Args:
        slow_ms: requests at least this slow are highlighted (``--slow-ms``).
        log_rate: request lines per second shown before sampling starts.
        hold: items kept while the log is paused or the dashboard is up.
        can_reload: whether the ``r`` key can reload (``--reload``).
        show_requests: log a line per request (``--no-access-log``: only errors and slow).
        root: file names under this directory are shown relative to it.
        stats: the figures shown. Given: someone else counts events into it (the session
            does, `devserve.reporting`). None: the state makes its own and counts each
            event in `apply` (tests, the SVG script).
    """

    def __init__(
        self,
        *,
        stats: Stats | None = None,
        slow_ms: float = 500.0,
        log_rate: int = DEFAULT_LOG_RATE,
        hold: int = DEFAULT_HOLD,
        can_reload: bool = True,
        show_requests: bool = True,
        root: str = "",
    ) -> None:
        self.stats = Stats() if stats is None else stats
        self._counts_events = stats is None
        self.slow_ms = slow_ms
        self.log_rate = log_rate
        self.can_reload = can_reload
        self.show_requests = show_requests
        self.root = root.rstrip("/") + "/" if root else ""
        self.phase = Phase.STARTING
        self.urls: tuple[str, ...] = ()
        self.app = ""
        self.startup_ms: float | None = None
        self.cert_trusted: bool | None = None
        self.last_error: AppErrored | None = None
        self.failure: StartupFailed | None = None
        self.reload_files: tuple[str, ...] = ()
        self.screen = Screen.LOG
        self.is_paused = False
        self.show_help = False
        self.sort_key: RouteSortKey = "count"
        self.version = 0
        self.open_item: LogItem | None = None
        self._committed: deque[LogItem] = deque()
        self._hold = hold
        self._overflow = 0
        self._hidden = self._hidden_output = 0
        self._hidden_reported_at = float("-inf")
        self._tokens = float(log_rate)
        self._tokens_at: float | None = None
        self._pending_error: tuple[AppErrored, float] | None = None

    # -- events ----------------------------------------------------------------------------

    def apply(self, event: Event, now_s: float) -> None:  # noqa: C901, PLR0912 - one case per event
        """Reduce one event at monotonic time ``now_s``."""
        if self._counts_events:
            record_event(self.stats, event, now_s)
        self.version += 1
        match event:
            case RequestCompleted():
                self._request(event, now_s)
            case AppErrored():
                self._error(event, now_s)
            case StartupFailed():
                self.failure, self.phase = event, Phase.BROKEN
                self._add(FailureBlock(event))
            case ServerStarted():
                self._started(event)
            case ChangeDetected():
                self.phase, self.reload_files = Phase.RELOADING, event.files
            case WorkerStarted() if self.phase is Phase.CRASHED:
                self.phase = Phase.STARTING
            case WorkerReady() if self.phase is Phase.STARTING and self.urls:
                self.phase = Phase.BROKEN if event.is_broken else Phase.SERVING
            case ReloadFinished():
                self._reload_finished(event)
            case WorkerExited() if not event.is_expected and self.phase is not Phase.STOPPING:
                self.phase = Phase.CRASHED
                self._add(crash_notice(event))
            case ServerStopping():
                self.phase = Phase.STOPPING
            case LogLine():
                self._log_line(event)
            case AppOutput():
                self._add(OutputLine(event.stream, event.line), sampled_at=now_s)
            case WebSocketOpened():
                self._add(NoticeLine("ws", f"WebSocket {event.path} accepted"))
            case WebSocketClosed():
                text = f"WebSocket {event.path} closed {event.close_code}"
                self._add(NoticeLine("ws", f"{text} after {event.duration_ms / 1000:.1f} s"))
            case _:
                self.version -= 1  # nothing shown changed

    def _error(self, event: AppErrored, now_s: float) -> None:
        self.last_error = event
        if event.method and not event.response_started:
            self._flush_error()
            self._pending_error = (event, now_s)  # its 500 follows: shown together
        else:
            self._add(ErrorBlock(event))

    def _started(self, event: ServerStarted) -> None:
        self.urls, self.app, self.startup_ms = event.urls, event.app, event.startup_ms
        self.phase = Phase.BROKEN if self.failure else Phase.SERVING
        text = f"serving {event.app} on {', '.join(event.urls)}"
        self._add(NoticeLine("info", f"{text} (ready in {event.startup_ms:.0f} ms)"))

    def _request(self, event: RequestCompleted, now_s: float) -> None:
        error = None
        if self._pending_error is not None and event.status >= _SERVER_ERROR:
            pending = self._pending_error[0]
            if (pending.method, pending.path) == (event.method, event.path):
                error, self._pending_error = pending, None
        duration = event.duration_ms
        is_slow = duration >= self.slow_ms
        item = self.open_item
        if (  # the common case under load, a repeat of the open line: no new object
            error is None
            and type(item) is RequestLine
            and item.error is None
            and item.path == event.path
            and item.status == event.status
            and item.method == event.method
            and item.is_slow == is_slow
        ):
            item.count += 1
            item.duration_ms = duration
            item.max_ms = max(item.max_ms, duration)
            return
        line = RequestLine(
            event.method,
            event.path,
            event.status,
            event.duration_ms,
            event.bytes_out,
            is_slow,
            error,
            max_ms=event.duration_ms,
        )
        is_shown_always = is_slow or error is not None or event.status >= _SERVER_ERROR
        if not (self.show_requests or is_shown_always):
            return
        if is_shown_always or self._take_token(now_s):
            self._add(line)
        else:
            self._hidden += 1

    def _take_token(self, now_s: float) -> bool:
        if self._tokens_at is not None:
            elapsed = max(0.0, now_s - self._tokens_at)
            self._tokens = min(float(self.log_rate), self._tokens + elapsed * self.log_rate)
        self._tokens_at = now_s
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def _reload_finished(self, event: ReloadFinished) -> None:
        self.reload_files = ()
        files = ", ".join(event.files[:3]) + (" ..." if len(event.files) > 3 else "")  # noqa: PLR2004
        cause = f" ({files})" if files else ""
        if event.ok:
            self.phase, self.failure = Phase.SERVING, None
            how = f"{event.strategy}, {event.start_method}"
            self._add(
                NoticeLine("reload", f"reloaded in {event.duration_ms:.0f} ms [{how}]{cause}")
            )
        else:
            self.phase = Phase.BROKEN
            self._add(NoticeLine("warning", f"reload failed{cause}: serving the error"))

    def _log_line(self, event: LogLine) -> None:
        if event.message.startswith("the CA is trusted"):
            self.cert_trusted = True
        elif event.message.startswith("the CA is not trusted"):
            self.cert_trusted = False
        self._add(NoticeLine(event.level, event.message))

    def _add(self, item: LogItem, sampled_at: float | None = None) -> None:
        """Collapse `item` into the open one, or open it (``sampled_at``: costs a token)."""
        if self.open_item is not None and same(self.open_item, item):
            bump(self.open_item, item)
            return
        if sampled_at is not None and not self._take_token(sampled_at):
            self._hidden_output += 1
            return
        if self.open_item is not None:
            self._commit(self.open_item)
        self.open_item = item

    def _commit(self, item: LogItem) -> None:
        if len(self._committed) >= self._hold:
            self._committed.popleft()
            self._overflow += 1
        self._committed.append(item)

    def _report_hidden(self) -> None:
        if self.open_item is not None:  # keep the order: what was open came first
            self._commit(self.open_item)
            self.open_item = None
        if self._hidden:
            self._commit(HiddenLine(self._hidden))
        if self._hidden_output:
            self._commit(HiddenLine(self._hidden_output, "output lines"))
        self._hidden = self._hidden_output = 0

    def _flush_error(self) -> None:
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error[0], None
            self._add(ErrorBlock(error))

    # -- frames ----------------------------------------------------------------------------

    @property
    def is_holding(self) -> bool:
        """Whether committed items wait (paused log, or the dashboard is up)."""
        return self.is_paused or self.screen is Screen.DASHBOARD

    def take_log(self, now_s: float) -> list[LogItem]:
        """Return the items committed since the last call (none while holding).

        A pending error older than `ERROR_JOIN_S` is committed alone first; sampled-out
        requests are reported at most once per `HIDDEN_REPORT_S`.
        """
        if self._pending_error is not None and now_s - self._pending_error[1] >= ERROR_JOIN_S:
            self._flush_error()
            self.version += 1
        if (self._hidden or self._hidden_output) and (
            now_s - self._hidden_reported_at >= HIDDEN_REPORT_S
        ):
            self._report_hidden()
            self._hidden_reported_at = now_s
        if self.is_holding or not (self._committed or self._overflow):
            return []
        items: list[LogItem] = []
        if self._overflow:
            items.append(HiddenLine(self._overflow, "lines"))
            self._overflow = 0
        items.extend(self._committed)
        self._committed.clear()
        return items

    def take_all(self) -> list[LogItem]:
        """Everything still unshown, the open item included (on exit)."""
        self._flush_error()
        self._report_hidden()
        if self.open_item is not None:
            self._commit(self.open_item)
            self.open_item = None
        self.is_paused, self.screen = False, Screen.LOG
        return self.take_log(float("inf"))

    # -- keys ------------------------------------------------------------------------------

    def toggle_dashboard(self) -> None:
        """``d``: switch between the log and the full-screen dashboard."""
        self.screen = Screen.LOG if self.screen is Screen.DASHBOARD else Screen.DASHBOARD
        self.version += 1

    def toggle_pause(self) -> None:
        """``p``: hold the log, or let it run again."""
        self.is_paused = not self.is_paused
        self.version += 1

    def toggle_help(self) -> None:
        """``h``: show or hide the key help."""
        self.show_help = not self.show_help
        self.version += 1

    def next_sort(self) -> None:
        """``s`` on the dashboard: sort the route table by the next column."""
        self.sort_key = SORT_KEYS[(SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)]
        self.version += 1

    def clear(self) -> None:
        """``c``: forget the log (the figures stay)."""
        self._committed.clear()
        self.open_item = None
        self._overflow = self._hidden = self._hidden_output = 0
        self.version += 1

    def full_traceback(self) -> bool:
        """``t``: log the last error's whole traceback; False when there is none."""
        if self.last_error is None:
            return False
        self._add(ErrorBlock(self.last_error, is_full=True))
        self.version += 1
        return True

    def notice(self, text: str, level: str = "info") -> None:
        """Log devserve's answer to a key."""
        self._add(NoticeLine(level, text))
        self.version += 1

    def error_location(self) -> tuple[str, int] | None:
        """Where the last error happened (broken code first), as (file, line)."""
        if self.failure is not None and self.failure.filename:
            return self.failure.filename, self.failure.lineno or 1
        if self.last_error is not None:
            return user_frame(self.last_error)
        return None
