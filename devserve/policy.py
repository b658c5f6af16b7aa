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
STARTING    supersede pending  swap: drain live;    pending: crash; a     stop all
                               -> SERVING           good live keeps
                                                    serving, else crash
                                                    page
RESTARTING  remember files     (stale: ignore)      last drained: spawn   stop all
BACKOFF     spawn now (drop a  crash page stands    draining or crash     stop all
            starting crash     in until the retry   page: forget
            page)
STOPPING    ignore             ignore               last one: -> DONE     kill all
=========== ================== ==================== ===================== ===============

``BackoffElapsed`` is legal only in BACKOFF (and ignored when stale). An input with no
rule for the current phase raises `PolicyError` naming both.

A crash loop backs off exponentially (0.1 s doubling to 5 s) and the streak resets only
when files change, so a worker that dies on every start never spins the CPU.

**Crash pages** (#7). A worker that dies *before* it is ready (``os._exit`` or a signal
at import: nothing Python could report) while no good worker serves is not restarted: the
user's code would only die again. `SpawnCrashPage` starts an error-only worker that never
imports the app and answers every request with the crash (a broken generation, as for an
import error) until the next save spawns real code and swaps it out. With a good worker
live, that one keeps serving and the crash is only reported. When a worker that *was*
serving dies with nobody else up, it is still restarted after the backoff; while a
backoff of `STAND_IN_MIN_S` or more runs, a crash page stands in (shorter ones are over
before a stand-in would be up), so requests get an answer instead of waiting in the
backlog. A crash page that dies itself is never replaced by another one.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devserve.errors import PolicyError
from devserve.lifecycle import (
    Action,
    BackoffElapsed,
    FilesChanged,
    Finished,
    Input,
    Kill,
    ReloadFinished,
    Spawn,
    SpawnCrashPage,
    StartBackoff,
    StopRequested,
    Terminate,
    WorkerCrashed,
    WorkerExited,
    WorkerReady,
)

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
#: Shortest backoff during which a crash page serves (see the module docstring).
STAND_IN_MIN_S = 0.5


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
    is_live_broken: bool = False
    #: Generations that are crash pages (error-only workers), until they exit.
    crash_pages: set[int] = field(default_factory=set)
    is_first_start: bool = True

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

    def _spawn_crash_page(
        self, crashed: int, code: int, retry_in_s: float | None = None
    ) -> SpawnCrashPage:
        generation = self.next_generation
        self.next_generation += 1
        self.pending = generation
        self.crash_pages.add(generation)
        return SpawnCrashPage(generation, crashed, code, retry_in_s)

    def _drain(self, generation: int | None) -> list[Action]:
        if generation is None:
            return []
        self.draining.add(generation)
        return [Terminate(generation)]

    def _note_change(self, event: FilesChanged) -> None:
        self.crash_streak = 0
        self.is_first_start = False
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
        return [*self._drop_pending(), self._spawn()]

    def _drop_pending(self) -> list[Action]:
        """Drain a crash page that is still starting (a real worker replaces it)."""
        actions = self._drain(self.pending)
        self.pending = None
        return actions

    def _ready(self, event: WorkerReady) -> list[Action]:
        if event.generation != self.pending:
            return []
        actions = self._drain(self.live)
        self.live, self.pending = event.generation, None
        self.is_live_broken = event.is_broken
        self.phase = Phase.SERVING
        started = event.at_s if self.change_at_s is None else self.change_at_s
        actions.append(
            ReloadFinished(
                generation=event.generation,
                duration_ms=max(0.0, (event.at_s - started) * 1000.0),
                paths=self.change_paths,
                is_broken=event.is_broken,
                is_first=self.is_first_start,
            )
        )
        self.is_first_start = False
        self.change_at_s, self.change_paths = None, ()
        return actions

    def _backoff_ready(self, event: WorkerReady) -> list[Action]:
        """A crash page standing in during the backoff is up: it serves until the retry."""
        if event.generation != self.pending:
            return []
        actions = self._drain(self.live)
        self.live, self.pending = event.generation, None
        self.is_live_broken = True
        return actions

    def _ignore(self, _event: Input) -> list[Action]:
        return []

    def _exited(self, event: WorkerExited) -> list[Action]:
        generation, code = event.generation, event.code
        was_crash_page = generation in self.crash_pages
        self.crash_pages.discard(generation)
        if generation in self.draining:
            return self._drained(generation)
        if generation == self.live:
            self.live = None
            if self.phase is Phase.SERVING:
                return self._crash_and_back_off(generation, code, was_crash_page=was_crash_page)
            return [WorkerCrashed(generation, code, retry_in_s=None)]
        if generation != self.pending:
            return []
        self.pending = None
        return self._pending_exited(generation, code, was_crash_page=was_crash_page)

    def _pending_exited(self, generation: int, code: int, *, was_crash_page: bool) -> list[Action]:
        """The starting worker died before it was ready."""
        if self.phase is Phase.BACKOFF:  # the stand-in died: the timer still runs
            return [WorkerCrashed(generation, code, retry_in_s=None)]
        if not was_crash_page and (self.live is None or self.is_live_broken):
            # Died before it was ready, with no good code serving: show the crash.
            page = self._spawn_crash_page(generation, code)
            self.phase = Phase.STARTING
            return [WorkerCrashed(generation, code, None, has_crash_page=True), page]
        if self.live is None:
            return self._crash_and_back_off(generation, code, was_crash_page=True)
        self.phase = Phase.SERVING
        return [WorkerCrashed(generation, code, retry_in_s=None)]

    def _drained(self, generation: int) -> list[Action]:
        self.draining.discard(generation)
        if self.phase is Phase.RESTARTING and not self.draining:
            return [self._spawn()]
        return []

    def _crash_and_back_off(
        self, generation: int, code: int, *, was_crash_page: bool = False
    ) -> list[Action]:
        delay_s = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**self.crash_streak)
        self.crash_streak += 1
        self.backoff_token += 1
        self.phase = Phase.BACKOFF
        actions: list[Action] = [
            WorkerCrashed(generation, code, delay_s),
            StartBackoff(delay_s, self.backoff_token),
        ]
        if delay_s >= STAND_IN_MIN_S and not was_crash_page:
            actions.append(self._spawn_crash_page(generation, code, retry_in_s=delay_s))
        return actions

    def _backoff_elapsed(self, event: BackoffElapsed) -> list[Action]:
        if event.token != self.backoff_token:
            return []
        return [*self._drop_pending(), self._spawn()]

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
        self.crash_pages.discard(event.generation)
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
    (_P.BACKOFF, WorkerReady): ReloadPolicy._backoff_ready,
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

__all__ = [
    "BACKOFF_FIRST_S",
    "BACKOFF_MAX_S",
    "STAND_IN_MIN_S",
    "Action",
    "BackoffElapsed",
    "FilesChanged",
    "Finished",
    "Input",
    "Kill",
    "Phase",
    "ReloadFinished",
    "ReloadPolicy",
    "Spawn",
    "SpawnCrashPage",
    "StartBackoff",
    "StopRequested",
    "Strategy",
    "Terminate",
    "WorkerCrashed",
    "WorkerExited",
    "WorkerReady",
]
