"""Facts a worker reports: one frozen dataclass per kind of thing that happened.

These are the only objects that cross the worker -> supervisor boundary. Each event is a
past-tense fact with validated fields; `Event` is their union, consumed with ``match`` so
mypy flags an unhandled kind. `to_wire` / `from_wire` turn an event into a JSON-able dict
tagged with its class name and back; framing of those dicts is `devserve.ipc`'s job.

In single-process mode the same events feed the access log directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeAlias

from devserve.regexcache import is_pattern


@dataclass(frozen=True, slots=True)
class ServerStarted:
    """The worker accepts connections. ``startup_ms`` counts from process start."""

    pid: int
    urls: tuple[str, ...]
    app: str
    startup_ms: float


@dataclass(frozen=True, slots=True)
class RequestCompleted:
    """A request's response finished (last byte written) or was abandoned.

    ``duration_ms`` runs from the request head being parsed to the last byte sent.
    ``route`` is the framework's route template when it exposes one (FastAPI, Starlette).
    """

    method: str
    path: str
    status: int
    duration_ms: float
    bytes_in: int
    bytes_out: int
    client: str
    http_version: str
    scheme: str
    route: str | None = None

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 999:  # noqa: PLR2004 - HTTP status range
            msg = f"status {self.status} out of range"
            raise ValueError(msg)
        if self.duration_ms < 0:
            msg = "duration_ms must be >= 0"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class TracebackFrame:
    """One frame of an application traceback."""

    filename: str
    lineno: int
    name: str
    line: str
    is_user_code: bool


@dataclass(frozen=True, slots=True)
class AppErrored:
    """The application raised while handling a request (or during lifespan)."""

    exc_type: str
    message: str
    traceback: str
    frames: tuple[TracebackFrame, ...]
    method: str
    path: str
    response_started: bool


@dataclass(frozen=True, slots=True)
class LogLine:
    """A line of server diagnostics (not app output) at a log level."""

    level: str
    message: str


@dataclass(frozen=True, slots=True)
class ServerStopping:
    """Graceful shutdown began: no new connections; ``in_flight`` requests remain."""

    in_flight: int


@dataclass(frozen=True, slots=True)
class WebSocketOpened:
    """Dashboard fact: the app accepted a WebSocket connection."""

    path: str
    client: tuple[str, int] | None
    subprotocol: str | None


@dataclass(frozen=True, slots=True)
class WebSocketClosed:
    """Dashboard fact: an accepted WebSocket connection finished."""

    path: str
    duration_ms: float
    messages_in: int
    messages_out: int
    close_code: int

    def __post_init__(self) -> None:
        if self.duration_ms < 0 or self.messages_in < 0 or self.messages_out < 0:
            msg = "duration and message counts must not be negative"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class StartupFailed:
    """A worker could not load the app or finish lifespan startup.

    The worker then serves an error response on every request until replaced, so a client
    never sees a refused connection because the code is broken.
    """

    stage: str
    exc_type: str
    message: str
    traceback: str
    filename: str | None
    lineno: int | None


@dataclass(frozen=True, slots=True)
class ModulesLoaded:
    """What the fork server should preload for the next worker.

    ``names``: modules the worker imported from outside the project; ``patterns``: regular
    expressions it compiled, as `devserve.regexcache.Pattern` triples.
    """

    names: tuple[str, ...]
    patterns: tuple[tuple[str, str, int], ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.patterns:
            if not is_pattern(pattern):
                msg = f"not a (kind, pattern, flags) triple: {pattern!r}"
                raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class EventsDropped:
    """The worker dropped ``count`` events because the supervisor fell behind."""

    count: int


Event: TypeAlias = (
    ServerStarted
    | RequestCompleted
    | AppErrored
    | LogLine
    | ServerStopping
    | WebSocketOpened
    | WebSocketClosed
    | StartupFailed
    | ModulesLoaded
    | EventsDropped
)

_KINDS: Mapping[str, type[Any]] = MappingProxyType(
    {
        cls.__name__: cls
        for cls in (
            ServerStarted,
            RequestCompleted,
            AppErrored,
            LogLine,
            ServerStopping,
            WebSocketOpened,
            WebSocketClosed,
            StartupFailed,
            ModulesLoaded,
            EventsDropped,
        )
    }
)


def to_wire(event: Event) -> dict[str, Any]:
    """Return a JSON-able dict for `event`, tagged with its kind under ``"k"``."""
    wire = dataclasses.asdict(event)
    wire["k"] = type(event).__name__
    return wire


def from_wire(wire: Mapping[str, Any]) -> Event:
    """Rebuild an event from `to_wire` output.

    Raises:
        ValueError: unknown kind or fields that do not validate.
    """
    data = dict(wire)
    kind = _KINDS.get(str(data.pop("k", "")))
    if kind is None:
        msg = f"unknown event kind {wire.get('k')!r}"
        raise ValueError(msg)
    try:
        if kind is AppErrored:
            data["frames"] = tuple(TracebackFrame(**f) for f in data["frames"])
        if kind is ServerStarted:
            data["urls"] = tuple(data["urls"])
        if kind is ModulesLoaded:
            data["names"] = tuple(data["names"])
            data["patterns"] = tuple(tuple(p) for p in data.get("patterns", ()))
        if kind is WebSocketOpened and data["client"] is not None:
            data["client"] = tuple(data["client"])
        event: Event = kind(**data)
    except (TypeError, KeyError) as exc:
        msg = f"invalid {kind.__name__} event: {exc}"
        raise ValueError(msg) from None
    return event
