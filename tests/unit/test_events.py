"""Tests for devserve.events and devserve.wire: wire round trips and field validation."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import pytest

from devserve.events import (
    AppErrored,
    AppOutput,
    ChangeDetected,
    Event,
    EventsDropped,
    LogLine,
    ModulesLoaded,
    ReloadFinished,
    RequestCompleted,
    ServerStarted,
    ServerStopping,
    StartupFailed,
    TracebackFrame,
    WebSocketClosed,
    WebSocketOpened,
    WorkerDraining,
    WorkerExited,
    WorkerReady,
    WorkerStarted,
)
from devserve.wire import from_wire, to_wire


def _request(**changes: Any) -> RequestCompleted:
    fields: dict[str, Any] = {
        "method": "GET",
        "path": "/x",
        "status": 200,
        "duration_ms": 1.5,
        "bytes_in": 0,
        "bytes_out": 12,
        "client": "127.0.0.1:5000",
        "http_version": "1.1",
        "scheme": "http",
    }
    fields.update(changes)
    return RequestCompleted(**fields)


EVENTS: list[Event] = [
    ServerStarted(
        pid=1234,
        urls=("http://127.0.0.1:8000", "http://[::1]:8000"),
        app="main:app",
        startup_ms=8.5,
    ),
    ServerStarted(pid=1, urls=(), app="a:b", startup_ms=0.0),
    _request(),
    _request(route="/items/{id}", status=404, bytes_in=3, scheme="https", http_version="1.0"),
    AppErrored(
        exc_type="ZeroDivisionError",
        message="division by zero",
        traceback="Traceback (most recent call last):\n  ...\nZeroDivisionError\n",
        frames=(
            TracebackFrame("main.py", 10, "home", "1 / 0", is_user_code=True),
            TracebackFrame("/lib/starlette/x.py", 99, "run", "await app()", is_user_code=False),
        ),
        method="GET",
        path="/",
        response_started=False,
    ),
    AppErrored(
        exc_type="RuntimeError",
        message="",
        traceback="",
        frames=(),
        method="",
        path="",
        response_started=True,
    ),
    LogLine(level="warning", message="héllo ✓"),
    ServerStopping(in_flight=0),
    ServerStopping(in_flight=3),
    WebSocketOpened(path="/ws", client=("127.0.0.1", 5000), subprotocol="chat"),
    WebSocketOpened(path="/ws", client=None, subprotocol=None),
    WebSocketClosed(path="/ws", duration_ms=1500.0, messages_in=3, messages_out=4, close_code=1000),
    StartupFailed(
        stage="import",
        exc_type="SyntaxError",
        message="invalid syntax",
        traceback="Traceback ...",
        filename="main.py",
        lineno=3,
    ),
    StartupFailed(
        stage="lifespan",
        exc_type="RuntimeError",
        message="db down",
        traceback="",
        filename=None,
        lineno=None,
    ),
    ModulesLoaded(names=("fastapi", "pydantic")),
    ModulesLoaded(names=()),
    ModulesLoaded(names=("re",), patterns=(("s", "^/api/items$", 0), ("b", "\xff+", 2))),
    EventsDropped(count=7),
    # supervisor-local: never sent, but encoded the same way (and written by --ui json)
    WorkerStarted(generation=2, pid=4321, strategy="fork"),
    WorkerReady(generation=2, pid=4321, startup_ms=12.5, is_broken=False),
    WorkerReady(generation=3, pid=4322, startup_ms=30.0, is_broken=True),
    WorkerDraining(generation=1, pid=4320, reason="reload"),
    WorkerExited(generation=1, pid=4320, code=0, signal=None, is_expected=True),
    WorkerExited(
        generation=2, pid=4321, code=None, signal="SIGKILL", is_expected=False, retry_in_s=0.2
    ),
    ChangeDetected(files=("app/models.py", "app/views.py")),
    ChangeDetected(files=()),
    ReloadFinished(
        generation=2,
        duration_ms=26.0,
        files=("app/models.py",),
        strategy="swap",
        start_method="fork",
        ok=True,
    ),
    ReloadFinished(
        generation=3, duration_ms=0.0, files=(), strategy="restart", start_method="spawn", ok=False
    ),
    AppOutput(stream="stdout", line="hello ✓", generation=2),
    AppOutput(stream="stderr", line="", generation=None),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_wire_round_trip(event: Event) -> None:
    wire = to_wire(event)
    assert wire["k"] == type(event).__name__
    again = from_wire(json.loads(json.dumps(wire)))
    assert again == event
    assert type(again) is type(event)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_wire_form_is_the_dataclass_as_json(event: Event) -> None:
    expected = {**dataclasses.asdict(event), "k": type(event).__name__}
    assert json.loads(json.dumps(to_wire(event))) == json.loads(json.dumps(expected))


def test_every_kind_is_covered() -> None:
    assert {type(e) for e in EVENTS} == set(typing.get_args(Event))


def test_round_trip_restores_tuples() -> None:
    started = from_wire(json.loads(json.dumps(to_wire(EVENTS[0]))))
    assert isinstance(started, ServerStarted)
    assert isinstance(started.urls, tuple)
    errored = from_wire(json.loads(json.dumps(to_wire(EVENTS[4]))))
    assert isinstance(errored, AppErrored)
    assert isinstance(errored.frames, tuple)
    assert all(isinstance(f, TracebackFrame) for f in errored.frames)
    opened = from_wire(json.loads(json.dumps(to_wire(EVENTS[9]))))
    assert isinstance(opened, WebSocketOpened)
    assert opened.client == ("127.0.0.1", 5000)
    loaded = from_wire(json.loads(json.dumps(to_wire(EVENTS[14]))))
    assert isinstance(loaded, ModulesLoaded)
    assert loaded.names == ("fastapi", "pydantic")
    for event in EVENTS:
        if isinstance(event, ChangeDetected | ReloadFinished):
            again = from_wire(json.loads(json.dumps(to_wire(event))))
            assert isinstance(again, ChangeDetected | ReloadFinished)
            assert isinstance(again.files, tuple)
    sent = next(e for e in EVENTS if isinstance(e, ModulesLoaded) and e.patterns)
    with_patterns = from_wire(json.loads(json.dumps(to_wire(sent))))
    assert isinstance(with_patterns, ModulesLoaded)
    assert with_patterns.patterns == (("s", "^/api/items$", 0), ("b", "\xff+", 2))


def test_reload_finished_rejects_negative_duration() -> None:
    with pytest.raises(ValueError, match="duration_ms must be >= 0"):
        ReloadFinished(2, -1.0, (), "swap", "fork", ok=True)


@pytest.mark.parametrize("bad", [("x", "a", 0), ("s", b"a", 0), ("s", "a"), ("s", "a", True)])
def test_modules_loaded_refuses_malformed_patterns(bad: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match="triple"):
        ModulesLoaded(names=(), patterns=(bad,))  # type: ignore[arg-type]


def test_to_wire_does_not_mutate_event() -> None:
    event = _request()
    to_wire(event)
    assert event == _request()


def test_from_wire_does_not_mutate_input() -> None:
    wire = to_wire(_request())
    copy = dict(wire)
    from_wire(wire)
    assert wire == copy


def test_events_are_frozen() -> None:
    frames = (TracebackFrame("app.py", 1, "f", "x", is_user_code=True),)
    event = AppErrored("ValueError", "bad", "tb", frames, "GET", "/", response_started=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.message = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("status", [99, 1000, 0, -200])
def test_status_out_of_range(status: int) -> None:
    with pytest.raises(ValueError, match=f"status {status} out of range"):
        _request(status=status)


@pytest.mark.parametrize("status", [100, 599, 999])
def test_status_in_range(status: int) -> None:
    assert _request(status=status).status == status


def test_negative_duration() -> None:
    with pytest.raises(ValueError, match="duration_ms must be >= 0"):
        _request(duration_ms=-0.1)


@pytest.mark.parametrize(
    "changes", [{"duration_ms": -1.0}, {"messages_in": -1}, {"messages_out": -1}]
)
def test_websocket_closed_negative_values(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "path": "/ws",
        "duration_ms": 1.0,
        "messages_in": 0,
        "messages_out": 0,
        "close_code": 1000,
    }
    fields.update(changes)
    with pytest.raises(ValueError, match="must not be negative"):
        WebSocketClosed(**fields)


def test_zero_duration_is_fine() -> None:
    assert _request(duration_ms=0.0).duration_ms == 0.0


def test_from_wire_validates() -> None:
    wire = to_wire(_request())
    wire["status"] = 42
    with pytest.raises(ValueError, match="status 42 out of range"):
        from_wire(wire)


@pytest.mark.parametrize(
    "wire",
    [
        {"k": "Nope"},
        {
            "k": "TracebackFrame",
            "filename": "a",
            "lineno": 1,
            "name": "f",
            "line": "",
            "is_user_code": True,
        },
        {"k": ""},
        {"k": None},
        {},
        {"level": "info", "message": "no kind"},
    ],
)
def test_unknown_kind(wire: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        from_wire(wire)


@pytest.mark.parametrize(
    "wire",
    [
        {"k": "LogLine", "level": "info"},
        {"k": "LogLine", "level": "info", "message": "m", "extra": 1},
        {"k": "ServerStopping"},
    ],
)
def test_missing_or_extra_fields(wire: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="argument"):
        from_wire(wire)


@pytest.mark.parametrize(
    "wire",
    [
        {"k": "AppErrored", "exc_type": "E"},
        {"k": "ServerStarted", "pid": 1},
        {"k": "WebSocketOpened", "path": "/ws"},
    ],
    ids=["AppErrored", "ServerStarted", "WebSocketOpened"],
)
def test_missing_container_field_is_value_error(wire: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="invalid"):
        from_wire(wire)
