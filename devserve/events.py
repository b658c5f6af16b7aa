"""Facts a worker reports: one frozen dataclass per kind of thing that happened.

(`RequestCompleted`, made for every request, is frozen for the type checker only: see
`per_request`.)

These are the only objects that cross the worker -> supervisor boundary. Each event is a
past-tense fact with validated fields; `Event` is their union, consumed with ``match`` so
mypy flags an unhandled kind. `devserve.wire` turns an event into a JSON-able dict tagged
with its class name and back; framing of those dicts is `devserve.ipc`'s job.

In single-process mode the same events feed the access log directly.

*Supervisor-local* events (`WorkerStarted`, `WorkerReady`, `WorkerDraining`,
`WorkerExited`, `ChangeDetected`, `ReloadFinished`, `AppOutput`) are facts only the
supervisor knows: about worker processes as a whole, the watcher and the workers' output
pipes. They never cross the wire, but they are part of the same `Event` union so every
output (plain, json, the dashboard) and the statistics see one stream of facts.
`AppOutput` is also made in single-process mode, when the app's output is captured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from devserve.regexcache import is_pattern

if TYPE_CHECKING:
    from dataclasses import dataclass as per_request
else:

    def per_request(**options: Any) -> Any:
        """`dataclass`, frozen for the type checker only: for the event made once per request.

        A frozen dataclass's ``__init__`` sets every field through ``object.__setattr__``,
        which made `RequestCompleted` four times as dear to build (3.3 against 0.8 us).
        """
        return dataclass(**{**options, "frozen": False})


@dataclass(frozen=True, slots=True)
class ServerStarted:
    """The worker accepts connections. ``startup_ms`` counts from process start."""

    pid: int
    urls: tuple[str, ...]
    app: str
    startup_ms: float


@per_request(frozen=True, slots=True)
class RequestCompleted:
    """A request's response finished (last byte written) or was abandoned.

    ``duration_ms`` runs from the request head being parsed to the last byte sent.
    ``route`` is the framework's route template when it exposes one (FastAPI, Starlette).
    ``query`` is the query string without the ``?``, decoded as latin-1 (shown in the log,
    never counted: statistics key on the route or the path).
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
    query: str = ""

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
    expressions it compiled, as `devserve.regexcache.Pattern` triples; ``sources``: the
    ``.py`` files of the project modules it imported, for the fork server to compile.
    """

    names: tuple[str, ...]
    patterns: tuple[tuple[str, str, int], ...] = ()
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.patterns:
            if not is_pattern(pattern):
                msg = f"not a (kind, pattern, flags) triple: {pattern!r}"
                raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class EventsDropped:
    """The worker dropped ``count`` events because the supervisor fell behind."""

    count: int


@dataclass(frozen=True, slots=True)
class WorkerStarted:
    """Supervisor-local: a worker generation's process exists; it is not serving yet.

    ``strategy`` says how it started: ``"fork"`` (from the preloaded fork server) or
    ``"spawn"`` (a fresh interpreter).
    """

    generation: int
    pid: int
    strategy: str


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """Supervisor-local: generation ``generation`` accepts connections.

    ``startup_ms`` runs from the worker process starting (or being forked) to accepting.
    ``is_broken``: its app failed to import or start, and it serves the error instead.
    """

    generation: int
    pid: int
    startup_ms: float
    is_broken: bool


@dataclass(frozen=True, slots=True)
class WorkerDraining:
    """Supervisor-local: generation ``generation`` was told to finish its requests and exit.

    ``reason`` is ``"reload"`` (newer code replaces it) or ``"stop"`` (devserve is stopping).
    """

    generation: int
    pid: int
    reason: str


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """Supervisor-local: a worker process ended.

    At most one of ``code`` (its exit status) and ``signal`` (the name of the signal that
    killed it, e.g. ``"SIGKILL"``) is set; neither when the status could not be read.
    ``is_expected``: it had been told to stop.
    ``retry_in_s``: an unexpected exit is retried after this backoff (None: not retried,
    another generation is serving, or the crash is served). ``has_crash_page``: it died
    before it was ready with no good code serving, and a crash page now answers (#7).
    """

    generation: int
    pid: int
    code: int | None
    signal: str | None
    is_expected: bool
    retry_in_s: float | None = None
    has_crash_page: bool = False


def exit_how(code: int | None, signal: str | None) -> str:
    """How a worker ended, for people: ``exit code 3``, ``killed by SIGSEGV``, or unknown."""
    if signal is not None:
        return f"killed by {signal}"
    return f"exit code {code}" if code is not None else "exit status unknown"


@dataclass(frozen=True, slots=True)
class ChangeDetected:
    """Supervisor-local: watched files changed (empty ``files``: a reload was asked for)."""

    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReloadFinished:
    """Supervisor-local: a reload completed, new code is live (or its failure is served).

    ``duration_ms`` runs from the change being detected to the new worker being ready.
    ``files`` are the changed paths (empty: asked for, or a restart after a crash).
    ``strategy`` is ``"swap"`` or ``"restart"``; ``start_method`` ``"fork"`` or ``"spawn"``.
    ``ok`` is False when the new code failed to import or start.
    """

    generation: int
    duration_ms: float
    files: tuple[str, ...]
    strategy: str
    start_method: str
    ok: bool

    def __post_init__(self) -> None:
        if self.duration_ms < 0:
            msg = "duration_ms must be >= 0"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class AppOutput:
    """One line the app wrote to ``stream`` (``"stdout"`` or ``"stderr"``), newline removed.

    ``generation`` is the worker generation that wrote it (None in single-process mode).
    """

    stream: str
    line: str
    generation: int | None = None


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
    | WorkerStarted
    | WorkerReady
    | WorkerDraining
    | WorkerExited
    | ChangeDetected
    | ReloadFinished
    | AppOutput
)

#: The kinds only the supervisor makes; they never cross the worker -> supervisor wire.
SUPERVISOR_LOCAL: tuple[type[Any], ...] = (
    WorkerStarted,
    WorkerReady,
    WorkerDraining,
    WorkerExited,
    ChangeDetected,
    ReloadFinished,
    AppOutput,
)
