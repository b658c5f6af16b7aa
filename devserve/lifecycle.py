"""The inputs and actions of the ``--reload`` lifecycle (`devserve.policy`).

PURE: one frozen dataclass per input the supervisor feeds the policy and per action the
policy answers with. They never cross the process boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

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
class SpawnCrashPage:
    """Start an error-only worker of `generation` showing that `crashed` exited with `code`.

    ``retry_in_s``: the app is restarted after this backoff (None: only after a save).
    """

    generation: int
    crashed: int
    code: int
    retry_in_s: float | None = None


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
    #: The first start (no file changed, nothing served before): no reload to report.
    is_first: bool = False


@dataclass(frozen=True, slots=True)
class WorkerCrashed:
    """A worker exited without being asked to; ``retry_in_s`` is None when not retried.

    ``has_crash_page``: a crash page serves this crash until the next save.
    """

    generation: int
    code: int
    retry_in_s: float | None
    has_crash_page: bool = False


@dataclass(frozen=True, slots=True)
class Finished:
    """Every worker is gone after a stop: the supervisor may exit."""


Action: TypeAlias = (
    Spawn
    | SpawnCrashPage
    | Terminate
    | Kill
    | StartBackoff
    | ReloadFinished
    | WorkerCrashed
    | Finished
)
