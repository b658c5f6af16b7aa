"""The statistics engine behind the live dashboard and the exit summary. Pure: no I/O, no clock.

Theory of operation
-------------------
The supervisor feeds ``Stats`` one call per worker event, passing the monotonic time it read
(``now_s``); the view calls ``Stats.snapshot(now_s)`` about ten times a second and renders the
frozen ``StatsSnapshot`` it gets back. Nothing here reads a clock, so tests drive time by hand.

Recording a request is O(1) and allocates no containers. Its duration is mapped to a bucket of
the log-linear layout in `devserve.tui.histogram` once, then counted in three places:

- a ``SlidingWindow`` of per-second slots (spans 10 s and 60 s) that also counts, per second,
  the status classes 1xx..5xx and app exceptions, so windowed rates, percentiles and status
  counts expire as ``now_s`` advances without storing any timestamp (only the dashboard
  reads it: ``windowed=False`` leaves it out, with the methods and byte counts);
- an all-time ``LatencyHistogram`` for the exit summary;
- the request's ``RouteStats`` in a ``RouteTable`` (`devserve.tui.routes`, re-exported here):
  count, errors, total and max duration and its own histogram. At most ``max_routes`` distinct
  keys are kept; later ones fold into ``OTHER_ROUTE``.

Errors are 5xx responses plus app exceptions reported with ``record_error``. The worker answers
an exception raised before the response with a 500, so a caller that reports both for the same
request counts it twice; report exceptions for which no 5xx was (or will be) recorded, or read
``server_errors`` and ``exceptions`` separately.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from devserve.tui.histogram import LatencyHistogram, SlidingWindow, bucket_index
from devserve.tui.routes import (
    DEFAULT_MAX_ROUTES,
    OTHER_ROUTE,
    RouteRow,
    RouteSortKey,
    RouteStats,
    RouteTable,
    SlowBy,
)

SHORT_WINDOW_S = 10
LONG_WINDOW_S = 60
DEFAULT_RELOAD_HISTORY = 20
MAX_RELOAD_FILES = 20
MAX_METHODS = 16
OTHER_METHOD = "(other)"

__all__ = [
    "DEFAULT_MAX_ROUTES",
    "DEFAULT_RELOAD_HISTORY",
    "LONG_WINDOW_S",
    "MAX_METHODS",
    "MAX_RELOAD_FILES",
    "OTHER_METHOD",
    "OTHER_ROUTE",
    "SHORT_WINDOW_S",
    "ReloadRecord",
    "RouteRow",
    "RouteSortKey",
    "RouteStats",
    "RouteTable",
    "SlowBy",
    "Stats",
    "StatsSnapshot",
    "StatsSummary",
    "StatusCounts",
    "WindowStats",
]

_STATUS_CLASSES = 5  # window counters 0..4 are 1xx..5xx
_EXCEPTION_COUNTER = _STATUS_CLASSES  # window counter 5 is app exceptions
_SERVER_ERROR_CLASS = 5


class StatusCounts(NamedTuple):
    """Responses per HTTP status class; index ``i`` is class ``(i + 1)xx``."""

    informational: int = 0
    success: int = 0
    redirection: int = 0
    client_error: int = 0
    server_error: int = 0


@dataclass(frozen=True, slots=True)
class ReloadRecord:
    """One finished reload.

    Attributes:
        at_s: Monotonic seconds when it was recorded.
        duration_ms: From the file change to the new worker being ready (or failing).
        files: The first ``MAX_RELOAD_FILES`` changed paths.
        file_count: How many paths changed in all.
        strategy: How the worker was replaced, e.g. ``"swap"`` or ``"restart"``.
        ok: Whether the new worker came up.
    """

    at_s: float
    duration_ms: float
    files: tuple[str, ...]
    file_count: int
    strategy: str
    ok: bool


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Traffic over the last ``span_s`` seconds (the current partial second included)."""

    span_s: int
    requests: int
    rate_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    status: StatusCounts
    errors: int


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """Everything the dashboard shows, frozen at ``now_s``."""

    now_s: float
    total_requests: int
    total_errors: int
    total_exceptions: int
    status: StatusCounts
    last_10s: WindowStats
    last_60s: WindowStats
    open_connections: int
    open_websockets: int
    slowest_routes: tuple[RouteRow, ...]
    errors_by_route: tuple[tuple[str, int], ...]
    methods: tuple[tuple[str, int], ...]
    last_reload: ReloadRecord | None
    reload_count: int
    dropped: int
    bytes_in: int
    bytes_out: int

    @property
    def requests_per_s(self) -> float:
        """Requests per second over the last 10 s."""
        return self.last_10s.rate_per_s


@dataclass(frozen=True, slots=True)
class StatsSummary:
    """The figures printed when devserve exits. Percentiles are over the whole run, in ms."""

    requests: int
    errors: int
    reloads: int
    failed_reloads: int
    p50_ms: float | None
    p95_ms: float | None
    slowest_route: RouteRow | None
    dropped: int


class Stats:
    """The aggregate the dashboard reads; every write is O(1).

    Args:
        max_routes: Cap on distinct route keys (see `RouteTable`).
        reload_history: How many recent reloads to keep.
        windowed: Keep the per-second sliding window, the request methods and byte counts the
            dashboard shows. Without them (the plain and JSON outputs, which only print
            `summary`) a request costs about half as much to record, and `snapshot`,
            `rate_series` and `p95_series` raise RuntimeError.

    Raises:
        ValueError: If ``max_routes`` or ``reload_history`` is below 1.
    """

    __slots__ = (
        "_bytes_in",
        "_bytes_out",
        "_dropped",
        "_exceptions",
        "_failed_reloads",
        "_methods",
        "_open_connections",
        "_open_websockets",
        "_overall",
        "_reload_count",
        "_reloads",
        "_requests",
        "_status",
        "_window",
        "routes",
    )

    def __init__(
        self,
        *,
        max_routes: int = DEFAULT_MAX_ROUTES,
        reload_history: int = DEFAULT_RELOAD_HISTORY,
        windowed: bool = True,
    ) -> None:
        if reload_history < 1:
            raise ValueError(f"reload_history must be >= 1, got {reload_history}")
        self._window = (
            SlidingWindow((SHORT_WINDOW_S, LONG_WINDOW_S), n_counters=_STATUS_CLASSES + 1)
            if windowed
            else None
        )
        self._overall = LatencyHistogram()
        self.routes = RouteTable(max_routes)
        self._status = [0] * _STATUS_CLASSES
        self._methods: dict[str, int] = {}
        self._requests = self._exceptions = self._dropped = 0
        self._bytes_in = self._bytes_out = 0
        self._open_connections = self._open_websockets = 0
        self._reloads: deque[ReloadRecord] = deque(maxlen=reload_history)
        self._reload_count = self._failed_reloads = 0

    def record_request(  # noqa: PLR0917 - one call per request: positional is cheapest
        self,
        now_s: float,
        method: str,
        route: str,
        status: int,
        duration_ms: float,
        bytes_in: int,
        bytes_out: int,
    ) -> None:
        """Count one completed HTTP request.

        Args:
            now_s: Monotonic seconds when it completed (as seen by the supervisor).
            method: HTTP method; at most ``MAX_METHODS`` distinct ones are kept apart.
            route: Route template where known, else the path.
            status: Response status; 5xx counts as an error, outside 100..599 as no class.
            duration_ms: Request duration in milliseconds.
            bytes_in: Request body bytes.
            bytes_out: Response body bytes.
        """
        index = bucket_index(duration_ms)
        status_class = status // 100
        counter = status_class - 1 if 1 <= status_class <= _STATUS_CLASSES else -1
        self._overall.record_bucket(index)
        self.routes.record_bucket(route, duration_ms, index, status_class == _SERVER_ERROR_CLASS)
        self._requests += 1
        if counter >= 0:
            self._status[counter] += 1
        window = self._window
        if window is None:
            return
        window.record_bucket(now_s, index, counter)
        self._bytes_in += bytes_in
        self._bytes_out += bytes_out
        methods = self._methods
        if method not in methods and len(methods) >= MAX_METHODS:
            method = OTHER_METHOD
        methods[method] = methods.get(method, 0) + 1

    def record_error(self, now_s: float, route: str | None) -> None:
        """Count one app exception, on ``route`` if it belongs to a request (see module notes)."""
        if self._window is not None:
            self._window.bump(now_s, _EXCEPTION_COUNTER)
        self._exceptions += 1
        if route is not None:
            self.routes.record_exception(route)

    def connection_opened(self) -> None:
        """Count a client connection as open."""
        self._open_connections += 1

    def connection_closed(self) -> None:
        """Count a client connection as closed (never below zero)."""
        self._open_connections = max(0, self._open_connections - 1)

    def websocket_opened(self) -> None:
        """Count a websocket as open."""
        self._open_websockets += 1

    def websocket_closed(self) -> None:
        """Count a websocket as closed (never below zero)."""
        self._open_websockets = max(0, self._open_websockets - 1)

    def record_reload(
        self, now_s: float, duration_ms: float, files: Sequence[str], strategy: str, ok: bool
    ) -> None:
        """Remember one finished reload; see `ReloadRecord` for the arguments."""
        kept = tuple(files[:MAX_RELOAD_FILES])
        self._reloads.append(ReloadRecord(now_s, duration_ms, kept, len(files), strategy, ok))
        self._reload_count += 1
        if not ok:
            self._failed_reloads += 1

    def record_dropped(self, n: int) -> None:
        """Count ``n`` events the worker dropped because the supervisor fell behind."""
        self._dropped += max(0, n)

    @property
    def reloads(self) -> tuple[ReloadRecord, ...]:
        """The most recent reloads, oldest first."""
        return tuple(self._reloads)

    def rate_series(self, now_s: float, seconds: int = LONG_WINDOW_S) -> list[float]:
        """Return requests per second for each of the last ``seconds`` seconds, oldest first.

        The last value is the current, partial second.

        Raises:
            ValueError: If ``seconds`` is not within ``[1, 60]``.
        """
        return [float(count) for count in self._windows().request_series(now_s, seconds)]

    def p95_series(self, now_s: float, seconds: int = LONG_WINDOW_S) -> list[float | None]:
        """Return each of the last ``seconds`` seconds' p95 in ms (None when idle), oldest first.

        Raises:
            ValueError: If ``seconds`` is not within ``[1, 60]``.
        """
        return self._windows().percentile_series(now_s, 95, seconds)

    def _windows(self) -> SlidingWindow:
        if self._window is None:
            msg = "these statistics were kept without the dashboard's windows"
            raise RuntimeError(msg)
        return self._window

    def _window_stats(self, now_s: float, span_s: int) -> WindowStats:
        window = self._windows()
        p50, p95, p99 = window.percentiles(now_s, span_s, (50, 95, 99))
        counters = window.counters(now_s, span_s)
        status = StatusCounts(*counters[:_STATUS_CLASSES])
        return WindowStats(
            span_s=span_s,
            requests=window.requests(now_s, span_s),
            rate_per_s=window.rate_per_s(now_s, span_s),
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            status=status,
            errors=status.server_error + counters[_EXCEPTION_COUNTER],
        )

    def snapshot(self, now_s: float) -> StatsSnapshot:
        """Return everything the dashboard shows at ``now_s`` (expiring old window slots)."""
        return StatsSnapshot(
            now_s=now_s,
            total_requests=self._requests,
            total_errors=self._status[-1] + self._exceptions,
            total_exceptions=self._exceptions,
            status=StatusCounts(*self._status),
            last_10s=self._window_stats(now_s, SHORT_WINDOW_S),
            last_60s=self._window_stats(now_s, LONG_WINDOW_S),
            open_connections=self._open_connections,
            open_websockets=self._open_websockets,
            slowest_routes=tuple(self.routes.slowest_routes(5)),
            errors_by_route=tuple(self.routes.errors_by_route(10)),
            methods=tuple(sorted(self._methods.items(), key=lambda item: (-item[1], item[0]))),
            last_reload=self._reloads[-1] if self._reloads else None,
            reload_count=self._reload_count,
            dropped=self._dropped,
            bytes_in=self._bytes_in,
            bytes_out=self._bytes_out,
        )

    def summary(self) -> StatsSummary:
        """Return the whole-run figures for the exit summary."""
        p50, p95 = self._overall.percentiles((50, 95))
        slowest = self.routes.slowest_routes(1)
        return StatsSummary(
            requests=self._requests,
            errors=self._status[-1] + self._exceptions,
            reloads=self._reload_count,
            failed_reloads=self._failed_reloads,
            p50_ms=p50,
            p95_ms=p95,
            slowest_route=slowest[0] if slowest else None,
            dropped=self._dropped,
        )
