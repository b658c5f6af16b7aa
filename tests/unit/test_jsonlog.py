"""Tests for devserve.jsonlog: one JSON object per event per line, stable names."""

from __future__ import annotations

import asyncio
import io
import json
import typing

import pytest

from devserve.events import Event
from devserve.jsonlog import JsonReporter, event_record, event_type, format_time
from devserve.tui.stats import Stats
from tests.unit.test_events import EVENTS

#: The ``type`` of every event kind. Tools match on these: a rename must be deliberate.
EXPECTED_TYPES = {
    "ServerStarted": "server_started",
    "RequestCompleted": "request_completed",
    "AppErrored": "app_errored",
    "LogLine": "log_line",
    "ServerStopping": "server_stopping",
    "WebSocketOpened": "websocket_opened",
    "WebSocketClosed": "websocket_closed",
    "StartupFailed": "startup_failed",
    "ModulesLoaded": "modules_loaded",
    "EventsDropped": "events_dropped",
    "WorkerStarted": "worker_started",
    "WorkerReady": "worker_ready",
    "WorkerDraining": "worker_draining",
    "WorkerExited": "worker_exited",
    "ChangeDetected": "change_detected",
    "ReloadFinished": "reload_finished",
    "AppOutput": "app_output",
}
EPOCH_S = 1_796_104_200.1234  # 2026-12-01T05:50:00.123Z


def test_every_kind_has_its_expected_type() -> None:
    kinds = {cls.__name__ for cls in typing.get_args(Event)}
    assert kinds == set(EXPECTED_TYPES)
    for event in EVENTS:
        assert event_type(event) == EXPECTED_TYPES[type(event).__name__]


def test_format_time_is_rfc3339_utc_with_milliseconds() -> None:
    assert format_time(EPOCH_S) == "2026-12-01T05:50:00.123Z"
    assert format_time(0.0) == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_record_has_type_time_and_every_field(event: Event) -> None:
    record = event_record(event, EPOCH_S)
    assert record["type"] == event_type(event)
    assert record["time"] == "2026-12-01T05:50:00.123Z"
    fields = set(getattr(type(event), "__dataclass_fields__", {}))
    assert set(record) == {"type", "time", *fields}
    assert json.loads(json.dumps(record)) == record


def test_floats_are_rounded_and_tuples_become_arrays() -> None:
    event = next(e for e in EVENTS if type(e).__name__ == "RequestCompleted")
    record = event_record(event, EPOCH_S)
    assert record["duration_ms"] == 1.5
    started = event_record(EVENTS[0], EPOCH_S)
    assert started["urls"] == ["http://127.0.0.1:8000", "http://[::1]:8000"]
    errored = next(e for e in EVENTS if type(e).__name__ == "AppErrored")
    frames = event_record(errored, EPOCH_S)["frames"]
    assert frames[0] == {
        "filename": "main.py",
        "lineno": 10,
        "name": "home",
        "line": "1 / 0",
        "is_user_code": True,
    }


def test_reporter_writes_one_parseable_line_per_event_and_flushes_each() -> None:
    stream = io.StringIO()
    reporter = JsonReporter(stream, wall_clock=lambda: EPOCH_S)
    for event in EVENTS:
        reporter(event)
        assert stream.getvalue().endswith("\n")  # written at once, no batching
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(EVENTS)
    assert [json.loads(line)["type"] for line in lines] == [event_type(e) for e in EVENTS]


def test_unicode_and_control_characters_stay_on_one_line() -> None:
    stream = io.StringIO()
    reporter = JsonReporter(stream, wall_clock=lambda: EPOCH_S)
    log_line = next(e for e in EVENTS if type(e).__name__ == "LogLine")
    reporter(log_line)
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert "héllo ✓" in text


def test_finish_writes_the_summary_object() -> None:
    stream = io.StringIO()
    reporter = JsonReporter(stream, wall_clock=lambda: EPOCH_S)
    stats = Stats()
    stats.record_request(
        0.0, method="GET", route="/", status=200, duration_ms=2.0, bytes_in=0, bytes_out=1
    )
    reporter.finish(stats.summary())
    record = json.loads(stream.getvalue())
    assert record["type"] == "summary"
    assert record["time"] == "2026-12-01T05:50:00.123Z"
    assert record["requests"] == 1
    assert record["slowest_route"]["route"] == "/"


def test_batched_reporter_writes_one_loop_iteration_at_once() -> None:
    stream = io.StringIO()
    reporter = JsonReporter(stream, is_batched=True, wall_clock=lambda: EPOCH_S)

    async def burst() -> str:
        for event in EVENTS[:5]:
            reporter(event)
        before = stream.getvalue()
        await asyncio.sleep(0)
        return before

    assert asyncio.run(burst()) == ""
    assert len(stream.getvalue().splitlines()) == 5


def test_closed_stream_is_swallowed() -> None:
    stream = io.StringIO()
    stream.close()
    JsonReporter(stream)(EVENTS[0])
