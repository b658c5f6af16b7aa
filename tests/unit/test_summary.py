"""Tests for devserve.summary: the exit summary as text and as a JSON object."""

from __future__ import annotations

import io
import json

import pytest

from devserve.config import Config
from devserve.reporting import open_session
from devserve.summary import format_ms, summary_record, summary_text
from devserve.tui.stats import Stats


def _busy_stats(*, windowed: bool = True) -> Stats:
    stats = Stats(windowed=windowed)
    for i in range(100):
        stats.record_request(
            1.0,
            method="GET",
            route="/fast",
            status=200,
            duration_ms=1.0 + i * 0.01,
            bytes_in=0,
            bytes_out=10,
        )
    for status in (200, 500):
        stats.record_request(
            1.5, method="GET", route="/slow", status=status, duration_ms=400.0, bytes_in=0,
            bytes_out=1,
        )  # fmt: skip
    stats.record_reload(2.0, 26.0, ["a.py"], "swap", ok=True)
    stats.record_reload(3.0, 30.0, ["a.py"], "swap", ok=False)
    return stats


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.4242, "0.42 ms"),
        (1.94, "1.9 ms"),
        (9.99, "10.0 ms"),
        (14.4, "14 ms"),
        (1234.0, "1234 ms"),
    ],
)
def test_format_ms(value: float, text: str) -> None:
    assert format_ms(value) == text


def test_summary_text_of_a_busy_reload_run() -> None:
    text = summary_text(_busy_stats().summary(), has_reloads=True)
    assert text.startswith("summary: 102 requests, 1 error, 2 reloads (1 failed), p50 1.")
    assert ", p95 " in text
    assert text.endswith("slowest route /slow (p95 400 ms, max 400 ms)")
    assert "\n" not in text


def test_summary_without_the_dashboard_windows_is_the_same() -> None:
    lean = _busy_stats(windowed=False)
    lean.record_error(3.0, "/slow")
    full = _busy_stats()
    full.record_error(3.0, "/slow")
    assert lean.summary() == full.summary()
    with pytest.raises(RuntimeError, match="without the dashboard's windows"):
        lean.snapshot(3.0)
    with pytest.raises(RuntimeError):
        lean.rate_series(3.0)


def test_only_the_dashboard_keeps_windows() -> None:
    plain = open_session(
        Config(app="m:app", ui="plain"), {}, is_batched=False, stdout=io.StringIO()
    )
    assert plain.stats.summary().requests == 0
    with pytest.raises(RuntimeError):
        plain.stats.snapshot(0.0)


def test_summary_text_of_an_idle_single_process_run() -> None:
    assert summary_text(Stats().summary(), has_reloads=False) == "summary: 0 requests, 0 errors"


def test_summary_text_mentions_dropped_events() -> None:
    stats = Stats()
    stats.record_dropped(7)
    assert summary_text(stats.summary(), has_reloads=True).endswith("0 reloads, 7 events dropped")


def test_summary_record_is_json_with_stable_names() -> None:
    record = summary_record(_busy_stats().summary())
    assert json.loads(json.dumps(record)) == record
    assert set(record) == {
        "requests",
        "errors",
        "reloads",
        "failed_reloads",
        "p50_ms",
        "p95_ms",
        "slowest_route",
        "dropped",
    }
    assert record["requests"] == 102
    assert record["errors"] == 1
    assert record["reloads"] == 2
    assert record["failed_reloads"] == 1
    assert record["slowest_route"]["route"] == "/slow"
    assert record["slowest_route"]["max_ms"] == 400.0


def test_summary_record_before_any_request() -> None:
    record = summary_record(Stats().summary())
    assert record["p50_ms"] is None
    assert record["p95_ms"] is None
    assert record["slowest_route"] is None
