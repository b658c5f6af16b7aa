"""Per-route request statistics with a cap on distinct route keys. Pure: no I/O, no clock.

Theory of operation
-------------------
A ``RouteTable`` maps a route key (the route template where the app exposes one, else the path)
to a ``RouteStats``: request count, 5xx responses, app exceptions, total and max duration, and
its own ``LatencyHistogram`` whose p95 is cached until the route's next request, so a table
redrawn ten times a second recomputes only the routes that changed. The table keeps at most
``max_routes`` distinct keys; requests for any further key fold into ``OTHER_ROUTE`` so an
unbounded path space (``/users/1``, ``/users/2``, ...) cannot grow memory. Tables read frozen
``RouteRow`` values, sorted by any column with route-name order breaking ties.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from devserve.tui.histogram import LatencyHistogram, bucket_index

DEFAULT_MAX_ROUTES = 500
OTHER_ROUTE = "(other)"

SlowBy = Literal["p95", "max", "mean"]
RouteSortKey = Literal["route", "count", "errors", "mean", "p95", "max"]
_ROW_FIELD = MappingProxyType(
    {
        "route": "route",
        "count": "count",
        "errors": "errors",
        "mean": "mean_ms",
        "p95": "p95_ms",
        "max": "max_ms",
    }
)


@dataclass(frozen=True, slots=True)
class RouteRow:
    """One route's figures at one moment, for tables. Durations in ms, None before any request."""

    route: str
    count: int
    errors: int
    mean_ms: float | None
    p95_ms: float | None
    max_ms: float


class RouteStats:
    """Running figures for one route key; written only by `RouteTable`.

    Attributes:
        route: The route key.
        count: Requests completed.
        server_errors: Of those, 5xx responses.
        exceptions: App exceptions reported for this route.
        total_ms: Sum of request durations.
        max_ms: Longest request duration (0.0 before any request).
    """

    __slots__ = (
        "_histogram",
        "_is_p95_stale",
        "_p95_ms",
        "count",
        "exceptions",
        "max_ms",
        "route",
        "server_errors",
        "total_ms",
    )

    def __init__(self, route: str) -> None:
        self.route = route
        self.count = 0
        self.server_errors = 0
        self.exceptions = 0
        self.total_ms = 0.0
        self.max_ms = 0.0
        self._histogram = LatencyHistogram()
        self._p95_ms: float | None = None
        self._is_p95_stale = False

    def _record(self, duration_ms: float, index: int, is_server_error: bool) -> None:
        self.count += 1
        self.total_ms += duration_ms
        self.max_ms = max(self.max_ms, duration_ms)
        if is_server_error:
            self.server_errors += 1
        self._histogram.record_bucket(index)
        self._is_p95_stale = True

    @property
    def errors(self) -> int:
        """5xx responses plus app exceptions."""
        return self.server_errors + self.exceptions

    @property
    def mean_ms(self) -> float | None:
        """Mean request duration, or None before any request."""
        return self.total_ms / self.count if self.count else None

    @property
    def p95_ms(self) -> float | None:
        """95th percentile duration (cached until the next request), or None before any."""
        if self._is_p95_stale:
            self._p95_ms = self._histogram.percentile(95)
            self._is_p95_stale = False
        return self._p95_ms

    def row(self) -> RouteRow:
        """Return the route's figures as a frozen row."""
        return RouteRow(self.route, self.count, self.errors, self.mean_ms, self.p95_ms, self.max_ms)


class RouteTable:
    """Per-route statistics with a cap on distinct keys; overflow folds into ``OTHER_ROUTE``.

    Args:
        max_routes: Most distinct route keys kept besides ``OTHER_ROUTE``.

    Raises:
        ValueError: If ``max_routes`` is below 1.
    """

    __slots__ = ("_max_routes", "_other", "_routes", "folded")

    def __init__(self, max_routes: int = DEFAULT_MAX_ROUTES) -> None:
        if max_routes < 1:
            raise ValueError(f"max_routes must be >= 1, got {max_routes}")
        self._max_routes = max_routes
        self._routes: dict[str, RouteStats] = {}
        self._other: RouteStats | None = None
        self.folded = 0  # events whose key was folded into OTHER_ROUTE

    def _lookup(self, route: str) -> RouteStats:
        stats = self._routes.get(route)
        if stats is not None:
            return stats
        if len(self._routes) < self._max_routes:
            stats = self._routes[route] = RouteStats(route)
            return stats
        self.folded += 1
        if self._other is None:
            self._other = RouteStats(OTHER_ROUTE)
        return self._other

    def record(self, route: str, duration_ms: float, *, is_server_error: bool = False) -> None:
        """Count one completed request on ``route`` (duration in ms; 5xx if ``is_server_error``)."""
        self.record_bucket(route, duration_ms, bucket_index(duration_ms), is_server_error)

    def record_bucket(
        self, route: str, duration_ms: float, index: int, is_server_error: bool = False
    ) -> None:
        """`record`, with the duration's `bucket_index` already computed by the caller."""
        self._lookup(route)._record(duration_ms, index, is_server_error)

    def record_exception(self, route: str) -> None:
        """Count one app exception on ``route``."""
        self._lookup(route).exceptions += 1

    def get(self, route: str) -> RouteStats | None:
        """Return the figures for ``route`` (``OTHER_ROUTE`` included), or None if unseen."""
        return self._other if route == OTHER_ROUTE else self._routes.get(route)

    def __len__(self) -> int:
        return len(self._routes) + (self._other is not None)

    def __iter__(self) -> Iterator[RouteStats]:
        yield from self._routes.values()
        if self._other is not None:
            yield self._other

    def routes_sorted(self, key: RouteSortKey = "count", descending: bool = True) -> list[RouteRow]:
        """Return every route as a row, sorted for a table.

        Ties keep route-name order; routes without a value for ``key`` (no requests yet) come last.

        Args:
            key: Column to sort by.
            descending: Largest first (for ``"route"``: reverse alphabetical).

        Raises:
            ValueError: If ``key`` is not a known column.
        """
        if key not in _ROW_FIELD:
            raise ValueError(f"unknown sort key {key!r}; expected one of {tuple(_ROW_FIELD)}")
        field = _ROW_FIELD[key]
        rows = sorted((stats.row() for stats in self), key=lambda row: row.route)
        present = [row for row in rows if getattr(row, field) is not None]
        present.sort(key=lambda row: getattr(row, field), reverse=descending)
        return present + [row for row in rows if getattr(row, field) is None]

    def slowest_routes(self, n: int = 5, by: SlowBy = "p95") -> list[RouteRow]:
        """Return the ``n`` routes with requests that are slowest by ``by``, slowest first.

        Raises:
            ValueError: If ``by`` is not ``"p95"``, ``"max"`` or ``"mean"``.
        """
        if by not in ("p95", "max", "mean"):
            raise ValueError(f"unknown slowness measure {by!r}; expected p95, max or mean")
        field = _ROW_FIELD[by]  # RouteStats has the same attribute names as RouteRow
        busy = [stats for stats in self if stats.count]
        top = heapq.nsmallest(max(0, n), busy, key=lambda s: (-getattr(s, field), s.route))
        return [stats.row() for stats in top]

    def errors_by_route(self, n: int = 10) -> list[tuple[str, int]]:
        """Return up to ``n`` ``(route, errors)`` pairs with errors, most errors first."""
        failing = [stats for stats in self if stats.errors]
        top = heapq.nsmallest(max(0, n), failing, key=lambda s: (-s.errors, s.route))
        return [(stats.route, stats.errors) for stats in top]
