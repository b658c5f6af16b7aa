"""Unit tests for the dashboard statistics engine (devserve.tui.stats and its helpers)."""

from __future__ import annotations

import math
import random

import pytest

from devserve.tui.dashview import sparkline
from devserve.tui.histogram import (
    BUCKET_COUNT,
    MAX_MS,
    MIN_MS,
    RELATIVE_ERROR,
    LatencyHistogram,
    SlidingWindow,
    bucket_bounds_ms,
    bucket_index,
)
from devserve.tui.stats import (
    OTHER_ROUTE,
    RouteTable,
    Stats,
    StatusCounts,
)

QUANTILES = (0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100)
TOLERANCE = RELATIVE_ERROR * (1 + 1e-9)  # the stated bound, plus float rounding


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 -- reproducible test data, not cryptography


def exact_percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile the histogram promises to approximate."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) / 100)) - 1]


def assert_close(estimate: float | None, exact: float) -> None:
    assert estimate is not None
    assert abs(estimate - exact) <= TOLERANCE * exact, (estimate, exact)


def request(
    stats: Stats, now_s: float, route: str = "/", status: int = 200, ms: float = 1.0
) -> None:
    stats.record_request(
        now_s, method="GET", route=route, status=status, duration_ms=ms, bytes_in=0, bytes_out=0
    )


# --- bucket layout -----------------------------------------------------------------------------


def test_bucket_bounds_contain_their_values_and_tile_the_range() -> None:
    rng = seeded(1)
    for _ in range(5000):
        ms = math.exp(rng.uniform(math.log(MIN_MS / 4), math.log(MAX_MS * 4)))
        low, high = bucket_bounds_ms(bucket_index(ms))
        assert low <= ms < high
    for index in range(1, BUCKET_COUNT):
        assert bucket_bounds_ms(index - 1)[1] == bucket_bounds_ms(index)[0]


def test_bucket_edges_and_out_of_range_values() -> None:
    assert bucket_index(0.0) == 0
    assert bucket_index(-5.0) == 0
    assert bucket_index(MIN_MS) == 1
    assert bucket_index(MAX_MS) == BUCKET_COUNT - 1
    assert bucket_index(math.inf) == BUCKET_COUNT - 1
    assert bucket_index(math.nan) == BUCKET_COUNT - 1
    with pytest.raises(IndexError):
        bucket_bounds_ms(BUCKET_COUNT)


def test_bucket_midpoints_are_within_the_stated_relative_error() -> None:
    for index in range(1, BUCKET_COUNT - 1):
        low, high = bucket_bounds_ms(index)
        middle = (low + high) / 2
        assert (middle - low) / low <= RELATIVE_ERROR
    assert RELATIVE_ERROR <= 0.05


# --- LatencyHistogram ----------------------------------------------------------------------------


def test_percentiles_match_exact_values_on_lognormal_data() -> None:
    rng = seeded(42)
    values = [rng.lognormvariate(math.log(20), 1.2) for _ in range(20_000)]
    histogram = LatencyHistogram()
    for ms in values:
        histogram.record(ms)
    assert histogram.count == len(values)
    for q in QUANTILES:
        assert_close(histogram.percentile(q), exact_percentile(values, q))
    several = histogram.percentiles(QUANTILES)
    assert several == tuple(histogram.percentile(q) for q in QUANTILES)


def test_percentiles_property_check_over_many_seeded_distributions() -> None:
    rng = seeded(7)
    for trial in range(60):
        n = rng.randint(1, 400)
        kind = trial % 3
        if kind == 0:
            values = [rng.lognormvariate(rng.uniform(-2, 8), rng.uniform(0.1, 2)) for _ in range(n)]
        elif kind == 1:
            values = [rng.uniform(0.05, 60_000) for _ in range(n)]
        else:
            values = [rng.choice((0.5, 3.0, 250.0))] * n
        histogram = LatencyHistogram()
        for ms in values:
            histogram.record(ms)
        q = rng.uniform(0, 100)
        assert_close(histogram.percentile(q), exact_percentile(values, q))
        assert histogram.percentile(0) is not None
        assert histogram.percentile(0) <= histogram.percentile(100)  # type: ignore[operator]


def test_empty_histogram_reports_none_and_rejects_bad_quantiles() -> None:
    histogram = LatencyHistogram()
    assert histogram.count == 0
    assert histogram.percentile(50) is None
    assert histogram.percentiles((50, 99)) == (None, None)
    with pytest.raises(ValueError, match="percentile"):
        histogram.percentile(101)
    with pytest.raises(ValueError, match="percentile"):
        histogram.percentile(-1)


def test_out_of_range_durations_report_the_range_edges() -> None:
    histogram = LatencyHistogram()
    histogram.record(0.0)
    assert histogram.percentile(50) == MIN_MS / 2
    histogram.clear()
    histogram.record(10 * 60_000.0)
    assert histogram.percentile(50) == MAX_MS


def test_merge_equals_recording_everything_in_one_and_clear_empties() -> None:
    rng = seeded(3)
    left, right, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(1000):
        ms = rng.lognormvariate(1, 1)
        (left if i % 3 else right).record(ms)
        both.record(ms)
    left.merge(right)
    assert left.count == both.count == 1000
    assert left.bucket_counts() == both.bucket_counts()
    assert repr(right).startswith("<LatencyHistogram count=334 p50=")
    left.clear()
    assert left.count == 0
    assert left.percentile(50) is None
    assert sum(left.bucket_counts()) == 0


# --- SlidingWindow -----------------------------------------------------------------------------


def test_window_expires_slots_as_time_advances() -> None:
    window = SlidingWindow((10, 60))
    window.record(100.2, 5.0)
    window.record(100.9, 7.0)
    assert window.requests(100.9, 10) == window.requests(100.9, 60) == 2
    assert window.requests(109.99, 10) == 2
    assert window.requests(110.0, 10) == 0  # second 100 left the 10 s window
    assert window.requests(110.0, 60) == 2
    assert window.percentiles(110.0, 10, (50,)) == (None,)
    assert window.percentiles(110.0, 60, (50,)) != (None,)
    assert window.requests(159.5, 60) == 2
    assert window.requests(160.0, 60) == 0


def test_window_survives_a_jump_longer_than_the_ring() -> None:
    window = SlidingWindow((10, 60), n_counters=1)
    for second in range(100, 130):
        window.record(second + 0.5, 2.0, counter=0)
    window.advance(500.0)
    assert window.requests(500.0, 60) == 0
    assert window.counters(500.0, 60) == (0,)
    assert window.request_series(500.0, 60) == [0] * 60
    window.record(500.5, 3.0)
    assert window.requests(501.0, 10) == window.requests(501.0, 60) == 1
    assert window.request_series(501.0, 3) == [0, 1, 0]


def test_window_matches_a_brute_force_model_on_random_traffic() -> None:
    rng = seeded(11)
    window = SlidingWindow((10, 60), n_counters=2)
    events: list[tuple[float, float, int]] = []
    now_s = 1000.0
    for _ in range(3000):
        now_s += rng.choice((0.0, 0.01, 0.3, 1.0, 7.0, 45.0, 90.0))
        ms, counter = rng.lognormvariate(2, 1), rng.randrange(-1, 2)
        window.record(now_s, ms, counter)
        events.append((now_s, ms, counter))
        if rng.random() < 0.1:
            for span in (10, 60):
                recent = [e for e in events if math.floor(e[0]) > math.floor(now_s) - span]
                expected = LatencyHistogram()
                for _, value, _ in recent:
                    expected.record(value)
                assert window.requests(now_s, span) == len(recent)
                assert window.percentiles(now_s, span, (50, 99)) == expected.percentiles((50, 99))
                counts = tuple(sum(1 for e in recent if e[2] == c) for c in (0, 1))
                assert window.counters(now_s, span) == counts


def test_time_going_backwards_counts_in_the_current_second() -> None:
    window = SlidingWindow((10,))
    window.record(50.5, 1.0)
    window.record(49.0, 1.0)
    assert window.requests(50.5, 10) == 2
    assert window.request_series(50.5, 2) == [0, 2]


def test_window_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="spans"):
        SlidingWindow(())
    with pytest.raises(ValueError, match="spans"):
        SlidingWindow((0, 10))
    with pytest.raises(ValueError, match="n_counters"):
        SlidingWindow((10,), n_counters=-1)
    window = SlidingWindow((10, 60))
    assert window.spans_s == (10, 60)
    with pytest.raises(ValueError, match="span"):
        window.requests(0.0, 30)
    with pytest.raises(ValueError, match="seconds"):
        window.request_series(0.0, 61)
    with pytest.raises(ValueError, match="percentile"):
        window.percentile_series(0.0, 150, 10)


# --- Stats: rates, windows, status classes -----------------------------------------------------


def test_rates_over_ten_and_sixty_seconds_in_steady_traffic() -> None:
    stats = Stats()
    for second in range(100, 200):
        for i in range(20):
            request(stats, second + i / 20)
    snapshot = stats.snapshot(199.999)
    assert snapshot.last_10s.requests == 200
    assert snapshot.last_60s.requests == 1200
    assert snapshot.requests_per_s == pytest.approx(20.0, rel=1e-3)
    assert snapshot.last_60s.rate_per_s == pytest.approx(20.0, rel=1e-3)
    assert stats.rate_series(199.999, 5) == [20.0] * 5


def test_rate_early_on_divides_by_elapsed_time_not_the_span() -> None:
    stats = Stats()
    for i in range(30):
        request(stats, 10.0 + i / 10)  # 30 requests in 3 s
    assert stats.snapshot(13.0).requests_per_s == pytest.approx(10.0)
    assert stats.snapshot(13.0).last_60s.rate_per_s == pytest.approx(10.0)
    single = Stats()
    request(single, 5.0)
    assert single.snapshot(5.0).requests_per_s == 1.0  # never divided by less than 1 s


def test_rate_drops_to_zero_after_the_window_and_a_long_jump() -> None:
    stats = Stats()
    for i in range(100):
        request(stats, 10.0 + i / 100)
    assert stats.snapshot(25.0).last_10s.requests == 0
    assert stats.snapshot(25.0).last_60s.requests == 100
    later = stats.snapshot(10_000.0)
    assert later.requests_per_s == 0.0
    assert later.last_60s.requests == 0
    assert later.last_60s.p95_ms is None
    assert later.total_requests == 100


def test_status_classes_totals_and_windows() -> None:
    stats = Stats()
    for status in (101, 200, 204, 301, 404, 418, 500, 503, 503, 99, 600):
        request(stats, 10.0, status=status)
    request(stats, 30.0, status=200)
    snapshot = stats.snapshot(30.0)
    assert snapshot.status == StatusCounts(1, 3, 1, 2, 3)
    assert snapshot.total_requests == 12  # out-of-range statuses count, with no class
    assert snapshot.total_errors == 3
    assert snapshot.last_10s.status == StatusCounts(success=1)
    assert snapshot.last_60s.status == StatusCounts(1, 3, 1, 2, 3)
    assert snapshot.last_60s.errors == 3
    assert snapshot.last_10s.errors == 0


def test_windowed_percentiles_within_error_of_exact() -> None:
    rng = seeded(5)
    stats = Stats()
    recent: list[float] = []
    for i in range(6000):
        now_s = 100.0 + i * 0.01  # 100 requests per second for 60 s
        ms = rng.lognormvariate(math.log(8), 0.9)
        request(stats, now_s, ms=ms)
        if now_s >= 150.0:
            recent.append(ms)
    snapshot = stats.snapshot(159.995)
    assert snapshot.last_10s.requests == len(recent)
    for estimate, q in zip(
        (snapshot.last_10s.p50_ms, snapshot.last_10s.p95_ms, snapshot.last_10s.p99_ms),
        (50, 95, 99),
        strict=True,
    ):
        assert_close(estimate, exact_percentile(recent, q))


def test_errors_count_exceptions_in_windows_and_routes() -> None:
    stats = Stats()
    request(stats, 10.0, route="/a", status=500)
    stats.record_error(10.5, "/a")
    stats.record_error(10.5, "/b")
    stats.record_error(11.0, None)
    snapshot = stats.snapshot(11.0)
    assert snapshot.total_errors == 4
    assert snapshot.total_exceptions == 3
    assert snapshot.last_10s.errors == 4
    assert snapshot.last_10s.requests == 1
    assert snapshot.errors_by_route == (("/a", 2), ("/b", 1))
    route_b = stats.routes.get("/b")
    assert route_b is not None
    assert (route_b.count, route_b.exceptions, route_b.mean_ms, route_b.p95_ms) == (
        0,
        1,
        None,
        None,
    )
    assert stats.snapshot(30.0).last_10s.errors == 0


def test_open_connections_websockets_dropped_bytes_and_methods() -> None:
    stats = Stats()
    stats.connection_opened()
    stats.connection_opened()
    stats.connection_closed()
    stats.websocket_opened()
    stats.websocket_closed()
    stats.websocket_closed()  # never below zero
    stats.connection_closed()
    stats.connection_closed()
    stats.connection_opened()
    stats.record_dropped(5)
    stats.record_dropped(-3)
    for method in ["GET"] * 3 + ["POST"] + [f"X{i}" for i in range(20)]:
        stats.record_request(
            1.0, method=method, route="/", status=200, duration_ms=1.0, bytes_in=10, bytes_out=100
        )
    snapshot = stats.snapshot(1.0)
    assert (snapshot.open_connections, snapshot.open_websockets, snapshot.dropped) == (1, 0, 5)
    assert (snapshot.bytes_in, snapshot.bytes_out) == (240, 2400)
    methods = dict(snapshot.methods)
    assert methods["GET"] == 3
    assert len(methods) == 17  # 16 kept apart, the rest folded
    assert sum(methods.values()) == 24
    assert snapshot.methods[:2] == (("(other)", 6), ("GET", 3))  # most used first


# --- routes ------------------------------------------------------------------------------------


def test_route_cap_folds_overflow_into_other() -> None:
    stats = Stats(max_routes=3)
    for i in range(6):
        request(stats, 1.0, route=f"/r{i}", ms=float(i + 1))
    request(stats, 1.0, route="/r0")
    assert len(stats.routes) == 4
    assert [r.route for r in stats.routes] == ["/r0", "/r1", "/r2", OTHER_ROUTE]
    other = stats.routes.get(OTHER_ROUTE)
    assert other is not None
    assert (other.count, other.max_ms) == (3, 6.0)
    assert stats.routes.folded == 3
    assert stats.routes.get("/r5") is None
    first = stats.routes.get("/r0")
    assert first is not None
    assert first.count == 2
    with pytest.raises(ValueError, match="max_routes"):
        RouteTable(0)


def test_routes_sorted_by_every_column() -> None:
    table = RouteTable()
    for route, durations in {"/b": [10.0, 10.0], "/a": [1.0, 100.0], "/c": [5.0]}.items():
        for ms in durations:
            table.record(route, ms)
    table.record("/c", 5.0, is_server_error=True)
    table.record_exception("/d")  # no requests: no mean/p95, sorts last

    def order(key: str, descending: bool = True) -> list[str]:
        return [row.route for row in table.routes_sorted(key, descending)]  # type: ignore[arg-type]

    assert order("count") == ["/a", "/b", "/c", "/d"]  # ties keep name order
    assert order("count", descending=False) == ["/d", "/a", "/b", "/c"]
    assert order("route") == ["/d", "/c", "/b", "/a"]
    assert order("route", descending=False) == ["/a", "/b", "/c", "/d"]
    assert order("errors") == ["/c", "/d", "/a", "/b"]
    assert order("mean") == ["/a", "/b", "/c", "/d"]
    assert order("mean", descending=False) == ["/c", "/b", "/a", "/d"]
    assert order("max") == ["/a", "/b", "/c", "/d"]
    assert order("p95") == ["/a", "/b", "/c", "/d"]
    with pytest.raises(ValueError, match="sort key"):
        order("latency")


def test_slowest_routes_by_p95_max_and_mean() -> None:
    table = RouteTable()
    for ms in [1.0] * 99 + [900.0]:
        table.record("/spiky", ms)
    for ms in [50.0] * 100:
        table.record("/steady", ms)
    table.record("/fast", 0.5)
    table.record_exception("/none")
    assert [r.route for r in table.slowest_routes(5, by="p95")] == ["/steady", "/spiky", "/fast"]
    assert [r.route for r in table.slowest_routes(1, by="max")] == ["/spiky"]
    assert [r.route for r in table.slowest_routes(2, by="mean")] == ["/steady", "/spiky"]
    assert table.slowest_routes(0) == []
    row = table.slowest_routes(1)[0]
    assert row.count == 100
    assert_close(row.p95_ms, 50.0)
    assert row.mean_ms == pytest.approx(50.0)
    table.record("/steady", 5000.0)  # the cached p95 is refreshed after a new request
    assert_close(table.slowest_routes(1, by="p95")[0].p95_ms, 50.0)
    for _ in range(10):
        table.record("/steady", 5000.0)
    assert_close(table.slowest_routes(1, by="p95")[0].p95_ms, 5000.0)
    with pytest.raises(ValueError, match="slowness"):
        table.slowest_routes(1, by="median")  # type: ignore[arg-type]


def test_snapshot_lists_top_five_slowest_routes() -> None:
    stats = Stats()
    for i in range(8):
        request(stats, 1.0, route=f"/r{i}", ms=float(10 * (i + 1)))
    routes = [row.route for row in stats.snapshot(1.0).slowest_routes]
    assert routes == ["/r7", "/r6", "/r5", "/r4", "/r3"]


# --- reloads and summary -----------------------------------------------------------------------


def test_reload_history_keeps_the_last_n() -> None:
    stats = Stats(reload_history=3)
    for i in range(5):
        files = [f"app/m{j}.py" for j in range(i * 10)]
        stats.record_reload(float(i), 100.0 + i, files, "swap", ok=i != 3)
    assert [r.duration_ms for r in stats.reloads] == [102.0, 103.0, 104.0]
    last = stats.snapshot(10.0).last_reload
    assert last is not None
    assert (last.at_s, last.strategy, last.ok, last.file_count) == (4.0, "swap", True, 40)
    assert len(last.files) == 20
    assert last.files[0] == "app/m0.py"
    assert stats.snapshot(10.0).reload_count == 5
    summary = stats.summary()
    assert (summary.reloads, summary.failed_reloads) == (5, 1)
    with pytest.raises(ValueError, match="reload_history"):
        Stats(reload_history=0)


def test_summary_of_a_run() -> None:
    stats = Stats()
    rng = seeded(9)
    values = [rng.lognormvariate(3, 0.5) for _ in range(2000)]
    for i, ms in enumerate(values):
        request(stats, i * 0.1, route="/slow" if i % 2 else "/fast", ms=ms * (2 if i % 2 else 1))
    stats.record_error(300.0, "/fast")
    stats.record_dropped(2)
    summary = stats.summary()
    assert (summary.requests, summary.errors, summary.dropped) == (2000, 1, 2)
    doubled = [ms * (2 if i % 2 else 1) for i, ms in enumerate(values)]
    assert_close(summary.p50_ms, exact_percentile(doubled, 50))
    assert_close(summary.p95_ms, exact_percentile(doubled, 95))
    assert summary.slowest_route is not None
    assert summary.slowest_route.route == "/slow"


# --- empty state -------------------------------------------------------------------------------


def test_empty_stats_report_none_and_zeros() -> None:
    stats = Stats()
    snapshot = stats.snapshot(0.0)
    assert snapshot.total_requests == snapshot.total_errors == 0
    assert snapshot.requests_per_s == 0.0
    for window in (snapshot.last_10s, snapshot.last_60s):
        assert (window.p50_ms, window.p95_ms, window.p99_ms) == (None, None, None)
        assert window.status == StatusCounts()
    assert snapshot.slowest_routes == ()
    assert snapshot.errors_by_route == snapshot.methods == ()
    assert snapshot.last_reload is None
    assert stats.rate_series(0.0) == [0.0] * 60
    assert stats.p95_series(0.0, 10) == [None] * 10
    summary = stats.summary()
    assert (summary.p50_ms, summary.p95_ms, summary.slowest_route) == (None, None, None)
    assert sparkline(stats.p95_series(0.0, 5), 5) == "     "


def test_series_put_each_second_in_place_oldest_first() -> None:
    stats = Stats()
    for _ in range(4):
        request(stats, 10.2, ms=2.0)
    request(stats, 12.7, ms=40.0)
    assert stats.rate_series(13.1, 5) == [0.0, 4.0, 0.0, 1.0, 0.0]
    p95 = stats.p95_series(13.1, 5)
    assert p95[0] is None
    assert p95[2] is None
    assert_close(p95[1], 2.0)
    assert_close(p95[3], 40.0)
    with pytest.raises(ValueError, match="seconds"):
        stats.rate_series(13.1, 0)


# --- sparkline ---------------------------------------------------------------------------------


def test_sparkline_scales_from_zero_to_the_peak() -> None:
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7, 8], 9) == "▁▁▂▃▄▅▆▇█"
    assert sparkline([1.0, 1.0], 2) == "██"
    assert sparkline([0.0, 0.0, 0.0], 3) == "▁▁▁"
    assert sparkline([-4.0, 2.0], 2) == "▁█"


def test_sparkline_width_padding_truncation_and_gaps() -> None:
    assert sparkline([1.0, 2.0], 5) == "   ▄█"
    assert sparkline([8.0, 1.0, 2.0, 4.0], 2) == "▄█"  # the last two, scaled to their own peak
    assert sparkline([None, 4.0, math.nan, 2.0], 4) == " █ ▄"
    assert sparkline([], 3) == "   "
    assert sparkline([1.0], 0) == ""
    for width in range(8):
        assert len(sparkline([float(i) for i in range(5)], width)) == width
    with pytest.raises(ValueError, match="width"):
        sparkline([1.0], -1)
