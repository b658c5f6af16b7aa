r"""The worker lifecycle under ``--reload``: a pure state machine.

The supervisor feeds inputs (files changed, a worker became ready, a worker exited, stop
requested, a backoff elapsed) and carries out the returned actions (spawn, terminate,
kill, start a backoff timer, report). No processes, clocks or I/O here: time arrives in
the inputs, so every row is tested with plain values.

Workers are numbered by *generation*. At most one is *live* (serving), at most one is
*pending* (starting with newer code), and any number are *draining* (told to stop).

=========== ================== ==================== ===================== ===============
phase \\ in  FilesChanged       WorkerReady(pending) WorkerExited           StopRequested
=========== ================== ==================== ===================== ===============
SERVING     spawn pending;     (stale: ignore)      live: crash -> backoff stop all
            restart: drain                          draining: forget
            live first
STARTING    supersede pending  swap: drain live;    pending: crash; live  stop all
                               -> SERVING           keeps serving
RESTARTING  remember files     (stale: ignore)      last drained: spawn   stop all
BACKOFF     spawn now          (stale: ignore)      draining: forget      stop all
STOPPING    ignore             ignore               last one: -> DONE     kill all
=========== ================== ==================== ===================== ===============

``BackoffElapsed`` is legal only in BACKOFF (and ignored when stale). An input with no
rule for the current phase raises `PolicyError` naming both.

A crash loop backs off exponentially (0.1 s doubling to 5 s) and the streak resets only
when files change, so a worker that dies on every start never spins the CPU.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from devserve.errors import PolicyError

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0


class Phase(enum.Enum):
    """Where the supervisor's worker lifecycle stands."""

    SERVING = "serving"
    STARTING = "starting"
    RESTARTING = "restarting"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    DONE = "done"


class Strategy(enum.Enum):
    """How a reload replaces the live worker."""

    SWAP = "swap"
    RESTART = "restart"


# -- inputs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FilesChanged:
    """Files changed (or a reload was asked for: empty ``paths``) at ``at_s``."""

    paths: tuple[str, ...]
    at_s: float


@dataclass(frozen=True, slots=True)
class WorkerReady:
    """Generation ``generation`` accepts connections (``is_broken``: serving an error)."""

    generation: int
    at_s: float
    is_broken: bool = False


@dataclass(frozen=True, slots=True)
class WorkerExited:
    """Generation ``generation`` exited with ``code`` (negative: killed by that signal)."""

    generation: int
    code: int


@dataclass(frozen=True, slots=True)
class StopRequested:
    """Ctrl+C / SIGTERM (a second one forces)."""


@dataclass(frozen=True, slots=True)
class BackoffElapsed:
    """The backoff timer started by `StartBackoff` with this ``token`` fired."""

    token: int


Input: TypeAlias = FilesChanged | WorkerReady | WorkerExited | StopRequested | BackoffElapsed

# -- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spawn:
    """Start a worker of this generation."""

    generation: int


@dataclass(frozen=True, slots=True)
class Terminate:
    """Ask this generation to drain and exit (the supervisor escalates if it does not)."""

    generation: int


@dataclass(frozen=True, slots=True)
class Kill:
    """Kill this generation now."""

    generation: int


@dataclass(frozen=True, slots=True)
class StartBackoff:
    """Feed `BackoffElapsed(token)` after ``delay_s``."""

    delay_s: float
    token: int


@dataclass(frozen=True, slots=True)
class ReloadFinished:
    """A reload completed: new code is live (or its failure is being served)."""

    generation: int
    duration_ms: float
    paths: tuple[str, ...]
    is_broken: bool


@dataclass(frozen=True, slots=True)
class WorkerCrashed:
    """A worker exited without being asked to; ``retry_in_s`` is None when not retried."""

    generation: int
    code: int
    retry_in_s: float | None


@dataclass(frozen=True, slots=True)
class Finished:
    """Every worker is gone after a stop: the supervisor may exit."""


Action: TypeAlias = (
    Spawn | Terminate | Kill | StartBackoff | ReloadFinished | WorkerCrashed | Finished
)


@dataclass
class ReloadPolicy:
    """The lifecycle state machine. Start it with `start`, then `apply` each input."""

    strategy: Strategy = Strategy.SWAP
    phase: Phase = Phase.STARTING
    live: int | None = None
    pending: int | None = None
    draining: set[int] = field(default_factory=set)
    next_generation: int = 1
    crash_streak: int = 0
    backoff_token: int = 0
    change_paths: tuple[str, ...] = ()
    change_at_s: float | None = None

    def start(self, at_s: float) -> list[Action]:
        """Spawn the first worker."""
        self.change_at_s = at_s
        return [self._spawn()]

    def apply(self, event: Input) -> list[Action]:
        """Advance on one input and return the actions to carry out.

        Raises:
            PolicyError: no rule for this input in the current phase.
        """
        handler = _TABLE.get((self.phase, type(event)))
        if handler is None:
            msg = f"no rule for {type(event).__name__} in phase {self.phase.name}"
            raise PolicyError(msg)
        return handler(self, event)

    # -- helpers --------------------------------------------------------------------------

    def _spawn(self) -> Spawn:
        generation = self.next_generation
        self.next_generation += 1
        self.pending = generation
        self.phase = Phase.STARTING
        return Spawn(generation)

    def _drain(self, generation: int | None) -> list[Action]:
        if generation is None:
            return []
        self.draining.add(generation)
        return [Terminate(generation)]

    def _note_change(self, event: FilesChanged) -> None:
        self.crash_streak = 0
        if self.change_at_s is None:
            self.change_at_s = event.at_s
        self.change_paths = tuple(sorted({*self.change_paths, *event.paths}))

    # -- rules ----------------------------------------------------------------------------

    def _serving_changed(self, event: FilesChanged) -> list[Action]:
        self.change_at_s = None
        self.change_paths = ()
        self._note_change(event)
        if self.strategy is Strategy.RESTART and self.live is not None:
            actions = self._drain(self.live)
            self.live = None
            self.phase = Phase.RESTARTING
            return actions
        return [self._spawn()]

    def _starting_changed(self, event: FilesChanged) -> list[Action]:
        self._note_change(event)
        actions = self._drain(self.pending)
        self.pending = None
        if self.strategy is Strategy.RESTART:
            self.phase = Phase.RESTARTING  # spawn once the superseded one is gone
            return actions
        return [*actions, self._spawn()]

    def _restarting_changed(self, event: FilesChanged) -> list[Action]:
        self._note_change(event)
        return []

    def _backoff_changed(self, event: FilesChanged) -> list[Action]:
        self.change_at_s = None
        self.change_paths = ()
        self._note_change(event)
        self.backoff_token += 1  # the running timer is now stale
        return [self._spawn()]

    def _ready(self, event: WorkerReady) -> list[Action]:
        if event.generation != self.pending:
            return []
        actions = self._drain(self.live)
        self.live, self.pending = event.generation, None
        self.phase = Phase.SERVING
        started = event.at_s if self.change_at_s is None else self.change_at_s
        actions.append(
            ReloadFinished(
                generation=event.generation,
                duration_ms=max(0.0, (event.at_s - started) * 1000.0),
                paths=self.change_paths,
                is_broken=event.is_broken,
            )
        )
        self.change_at_s, self.change_paths = None, ()
        return actions

    def _ignore(self, _event: Input) -> list[Action]:
        return []

    def _exited(self, event: WorkerExited) -> list[Action]:
        generation = event.generation
        if generation in self.draining:
            return self._drained(generation)
        if generation == self.live:
            self.live = None
            if self.phase is Phase.SERVING:
                return self._crash_and_back_off(generation, event.code)
            return [WorkerCrashed(generation, event.code, retry_in_s=None)]
        if generation != self.pending:
            return []
        self.pending = None
        if self.live is None:
            return self._crash_and_back_off(generation, event.code)
        self.phase = Phase.SERVING
        return [WorkerCrashed(generation, event.code, retry_in_s=None)]

    def _drained(self, generation: int) -> list[Action]:
        self.draining.discard(generation)
        if self.phase is Phase.RESTARTING and not self.draining:
            return [self._spawn()]
        return []

    def _crash_and_back_off(self, generation: int, code: int) -> list[Action]:
        delay_s = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**self.crash_streak)
        self.crash_streak += 1
        self.backoff_token += 1
        self.phase = Phase.BACKOFF
        return [WorkerCrashed(generation, code, delay_s), StartBackoff(delay_s, self.backoff_token)]

    def _backoff_elapsed(self, event: BackoffElapsed) -> list[Action]:
        if event.token != self.backoff_token:
            return []
        return [self._spawn()]

    def _stop(self, _event: StopRequested) -> list[Action]:
        actions: list[Action] = []
        for generation in (self.live, self.pending):
            actions.extend(self._drain(generation))
        self.live = self.pending = None
        self.phase = Phase.STOPPING
        if not self.draining:
            self.phase = Phase.DONE
            actions.append(Finished())
        return actions

    def _stop_again(self, _event: StopRequested) -> list[Action]:
        return [Kill(generation) for generation in sorted(self.draining)]

    def _stopping_exited(self, event: WorkerExited) -> list[Action]:
        self.draining.discard(event.generation)
        if self.draining:
            return []
        self.phase = Phase.DONE
        return [Finished()]


# Each rule takes the input type of its key; the table is the one place that pairs them.
_Rule = Callable[[ReloadPolicy, Any], list[Action]]
_P = Phase
_TABLE: dict[tuple[Phase, type], _Rule] = {
    (_P.SERVING, FilesChanged): ReloadPolicy._serving_changed,
    (_P.STARTING, FilesChanged): ReloadPolicy._starting_changed,
    (_P.RESTARTING, FilesChanged): ReloadPolicy._restarting_changed,
    (_P.BACKOFF, FilesChanged): ReloadPolicy._backoff_changed,
    (_P.STOPPING, FilesChanged): ReloadPolicy._ignore,
    (_P.SERVING, WorkerReady): ReloadPolicy._ready,
    (_P.STARTING, WorkerReady): ReloadPolicy._ready,
    (_P.RESTARTING, WorkerReady): ReloadPolicy._ignore,
    (_P.BACKOFF, WorkerReady): ReloadPolicy._ignore,
    (_P.STOPPING, WorkerReady): ReloadPolicy._ignore,
    (_P.SERVING, WorkerExited): ReloadPolicy._exited,
    (_P.STARTING, WorkerExited): ReloadPolicy._exited,
    (_P.RESTARTING, WorkerExited): ReloadPolicy._exited,
    (_P.BACKOFF, WorkerExited): ReloadPolicy._exited,
    (_P.STOPPING, WorkerExited): ReloadPolicy._stopping_exited,
    (_P.SERVING, StopRequested): ReloadPolicy._stop,
    (_P.STARTING, StopRequested): ReloadPolicy._stop,
    (_P.RESTARTING, StopRequested): ReloadPolicy._stop,
    (_P.BACKOFF, StopRequested): ReloadPolicy._stop,
    (_P.STOPPING, StopRequested): ReloadPolicy._stop_again,
    (_P.BACKOFF, BackoffElapsed): ReloadPolicy._backoff_elapsed,
    (_P.SERVING, BackoffElapsed): ReloadPolicy._ignore,
    (_P.STARTING, BackoffElapsed): ReloadPolicy._ignore,
    (_P.RESTARTING, BackoffElapsed): ReloadPolicy._ignore,
    (_P.STOPPING, BackoffElapsed): ReloadPolicy._ignore,
}
