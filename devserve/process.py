"""Start and stop worker processes (the spawn path: a fresh interpreter per generation).

Each worker gets, by file descriptor only (never the environment): the listening sockets,
the write end of its own event pipe, and the read end of the supervisor's *parent pipe*.
Stopping escalates and every wait is bounded: SIGTERM (drain), then SIGKILL after the
grace time plus one second.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from devserve.handoff import Handoff
from devserve.regexcache import Pattern

KILL_MARGIN_S = 1.0
_PR_SET_CHILD_SUBREAPER = 36


@dataclass
class WorkerProcess:
    """A running worker generation.

    Attributes:
        generation: its number.
        pid: its process id.
        exited: resolves with the exit code (negative: the signal that killed it).
        strategy: how it was started ("spawn" or "fork").
    """

    generation: int
    pid: int
    exited: asyncio.Future[int]
    strategy: str
    _kill_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def send_signal(self, signum: int) -> None:
        """Signal the worker unless it is already gone."""
        if not self.exited.done():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signum)

    def terminate(self, grace_s: float) -> None:
        """Ask it to drain and exit; kill it if it is still there after the grace time."""
        self.send_signal(signal.SIGTERM)
        if self._kill_timer is None:
            loop = asyncio.get_running_loop()
            self._kill_timer = loop.call_later(grace_s + KILL_MARGIN_S, self.kill)

    def kill(self) -> None:
        """Kill it now."""
        self.send_signal(signal.SIGKILL)

    def forget_timer(self) -> None:
        """Cancel the pending kill (it exited)."""
        if self._kill_timer is not None:
            self._kill_timer.cancel()
            self._kill_timer = None


class Launcher(Protocol):
    """Starts worker generations (spawn, or fork from a preloaded server)."""

    @property
    def strategy(self) -> str:
        """How workers start ("fork" or "spawn"), for reload lines."""
        ...

    async def launch(self, handoff: Handoff, pass_fds: list[int]) -> WorkerProcess:
        """Start one worker."""
        ...

    def preload(self, names: list[str], patterns: list[Pattern], sources: list[str]) -> None:
        """Learn which third-party modules, project files and regular expressions the app uses."""
        ...

    def prepare_next(self) -> None:
        """A reload finished: get ready for the next one."""
        ...

    async def close(self) -> None:
        """Release what the launcher holds."""
        ...


class SpawnLauncher:
    """Start each generation as ``python -m devserve.workerproc HANDOFF``."""

    @property
    def strategy(self) -> str:
        """Always "spawn"."""
        return "spawn"

    async def launch(self, handoff: Handoff, pass_fds: Sequence[int]) -> WorkerProcess:
        """Start a worker process for `handoff`.

        Args:
            handoff: what the worker needs to know.
            pass_fds: descriptors it inherits (listeners, event pipe, parent pipe).
        """
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "devserve.workerproc",
            handoff.to_json(),
            pass_fds=tuple(pass_fds),
            stdin=asyncio.subprocess.DEVNULL,
        )
        exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def wait() -> None:
            code = await proc.wait()
            if not exited.done():
                exited.set_result(code)

        task = asyncio.get_running_loop().create_task(wait())
        exited.add_done_callback(lambda _f: task.cancel() if not task.done() else None)
        return WorkerProcess(handoff.generation, proc.pid, exited, "spawn")

    async def close(self) -> None:
        """Nothing to release on the spawn path."""

    def preload(
        self, names: Sequence[str], patterns: Sequence[Pattern], sources: Sequence[str]
    ) -> None:
        """Spawned workers preload nothing."""

    def prepare_next(self) -> None:
        """Nothing to prepare on the spawn path."""


def become_subreaper() -> None:
    """Adopt orphaned descendants (Linux only).

    A worker outliving a rebuilt fork server stays ours to stop and to reap, instead of
    becoming a zombie of init.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


#: A worker's exit status that could not be read (it is gone but nobody reported how):
#: neither a status (>= 0) nor a signal (-1 would read as SIGHUP).
UNKNOWN_EXIT = -256


def exit_parts(code: int) -> tuple[int | None, str | None]:
    """Split a returncode into (status, signal name).

    ``3`` gives ``(3, None)``, ``-9`` gives ``(None, "SIGKILL")``, `UNKNOWN_EXIT` gives
    ``(None, None)``.
    """
    if code >= 0:
        return code, None
    return None, (None if code == UNKNOWN_EXIT else signal_name(-code))


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``signal 99`` for a number with no name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
