"""The exit summary: what a run did, in one line of text or one JSON object. Pure.

Printed when devserve stops, by every output mode (the dashboard prints it after giving
the terminal back). The figures come from `devserve.tui.stats.Stats.summary`, so they are
exact whatever the log showed::

    INFO:     summary: 1204 requests, 3 errors, 5 reloads (1 failed), p50 1.9 ms, p95 14 ms,
              slowest route /items/{item_id} (p95 120 ms, max 410 ms)

(one line in the real output). Parts that do not apply are left out: no reloads in
single-process mode, no percentiles before the first request, no route when nothing was
served. ``dropped`` appears only when the worker dropped events. Percentiles come from a
histogram (within about 3 %, see `devserve.tui.histogram`); a route's p95 is capped at its
exact maximum so the two never read p95 > max.
"""

from __future__ import annotations

from typing import Any

from devserve.tui.stats import StatsSummary


def format_ms(value: float) -> str:
    """Milliseconds with precision that fits the size: ``0.42 ms``, ``1.9 ms``, ``14 ms``."""
    if value < 1:
        return f"{value:.2f} ms"
    if value < 10:  # noqa: PLR2004 - one decimal below 10 ms
        return f"{value:.1f} ms"
    return f"{value:.0f} ms"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def summary_text(summary: StatsSummary, *, has_reloads: bool) -> str:
    """The summary as one line of text, without a level prefix.

    Args:
        summary: the run's figures.
        has_reloads: the run could reload (``--reload``), so the reload count is shown.
    """
    parts = [_plural(summary.requests, "request"), _plural(summary.errors, "error")]
    if has_reloads:
        failed = f" ({summary.failed_reloads} failed)" if summary.failed_reloads else ""
        parts.append(_plural(summary.reloads, "reload") + failed)
    if summary.p50_ms is not None and summary.p95_ms is not None:
        parts.append(f"p50 {format_ms(summary.p50_ms)}, p95 {format_ms(summary.p95_ms)}")
    route = summary.slowest_route
    if route is not None and route.p95_ms is not None:
        p95 = min(route.p95_ms, route.max_ms)
        parts.append(
            f"slowest route {route.route} (p95 {format_ms(p95)}, max {format_ms(route.max_ms)})"
        )
    if summary.dropped:
        parts.append(f"{summary.dropped} events dropped")
    return "summary: " + ", ".join(parts)


def summary_record(summary: StatsSummary) -> dict[str, Any]:
    """The summary as a JSON-able dict (``--ui json`` adds ``type`` and ``time``).

    Durations are milliseconds; a percentile is null before the first request and
    ``slowest_route`` is null when nothing was served.
    """
    route = summary.slowest_route
    return {
        "requests": summary.requests,
        "errors": summary.errors,
        "reloads": summary.reloads,
        "failed_reloads": summary.failed_reloads,
        "p50_ms": summary.p50_ms,
        "p95_ms": summary.p95_ms,
        "slowest_route": None
        if route is None
        else {
            "route": route.route,
            "count": route.count,
            "errors": route.errors,
            "mean_ms": route.mean_ms,
            "p95_ms": None if route.p95_ms is None else min(route.p95_ms, route.max_ms),
            "max_ms": route.max_ms,
        },
        "dropped": summary.dropped,
    }
