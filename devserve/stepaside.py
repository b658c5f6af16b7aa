"""A worker making way for a newer generation: hold new connections, yield the CPU.

When a reload starts a new worker, the supervisor sends each serving worker
`devserve.handoff.STEP_ASIDE_SIGNAL`; `devserve.worker.Worker.step_aside` then holds its
acceptors (`Accepting`) and, once the requests it is answering are done, lowers its own
priority (`yield_cpu`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Protocol


class Acceptor(Protocol):
    """What `Accepting` needs of an `asyncio.Server` or a `TLSAcceptor`: stop accepting."""

    def close(self) -> None:
        """Stop accepting."""


#: How long a worker holds back new connections for a newer generation (see `Accepting`).
HOLD_S = 0.25
#: How much lower (in nice steps, up to 19: the lowest) a worker runs once a newer
#: generation starts. At +10 the old worker still took about 10% of a shared core: 3 ms
#: of a FastAPI import's 27 (bench/reload_trace.py, every server process on one core).
YIELD_NICE = 19
#: A worker stepping aside yields the CPU this long after at the latest (`step_aside`).
YIELD_AFTER_S = 0.05
_RETRY_S = 0.1


class Accepting:
    """A worker's acceptors, which a newer generation starting can hold back for a while.

    While held, this worker accepts no new connection: they wait in the listening socket's
    backlog (shared by every generation), so a request made just after a save is answered
    by the new code, which accepts as soon as it is ready. If it is not ready in time (a
    slow import, a crash), this worker accepts again. Connections already open are served
    as before.

    Args:
        start: starts accepting on every listener; returns the acceptors.
    """

    def __init__(self, start: Callable[[], Awaitable[list[Acceptor]]]) -> None:
        self._start = start
        self.acceptors: list[Acceptor] = []
        self.is_closed = False
        self._resume: asyncio.TimerHandle | None = None
        self._reopening: asyncio.Future[None] | None = None

    async def open(self) -> None:
        """Start accepting."""
        self.acceptors = await self._start()

    def hold(self, seconds: float) -> None:
        """Accept nothing for `seconds` (from now, if already held), then accept again."""
        if self.is_closed:
            return
        if self._resume is not None:
            self._resume.cancel()
        self._close_acceptors()
        self._resume = asyncio.get_running_loop().call_later(seconds, self._resume_now)

    @property
    def is_held(self) -> bool:
        """Whether new connections are held back now."""
        return self._resume is not None

    def close(self) -> None:
        """Stop accepting for good (shutdown)."""
        self.is_closed = True
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        self._close_acceptors()

    def _resume_now(self) -> None:
        self._resume = None
        self._reopening = asyncio.ensure_future(self._reopen())

    async def _reopen(self) -> None:
        try:
            acceptors = await self._start()
        except OSError:  # out of descriptors, say: try again a moment later
            if not self.is_closed and not self.is_held:
                self.hold(_RETRY_S)
            return
        self.acceptors.extend(acceptors)
        if self.is_closed or self.is_held:  # stopped or held again meanwhile
            self._close_acceptors()

    def _close_acceptors(self) -> None:
        acceptors, self.acceptors = self.acceptors, []
        for acceptor in acceptors:
            acceptor.close()


def yield_cpu() -> None:
    """Lower this process's scheduling priority, every thread of it, by `YIELD_NICE`.

    Where CPU is short (two cores, a busy laptop, a container with one CPU) the worker
    being replaced keeps answering requests while its successor imports the app, and they
    share a core: the import, which the developer is waiting for, should come first. With
    no contention a nice value changes nothing. It cannot be undone without privileges, so
    only a worker on its way out does it (if its successor crashes before it is ready, it
    serves on at the lower priority until the next save replaces it). Linux sets a nice
    value per thread, hence every entry of ``/proc/self/task``; elsewhere the process's
    value covers its threads. Failures (not permitted) change nothing.
    """
    target = min(19, os.getpriority(os.PRIO_PROCESS, 0) + YIELD_NICE)
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        with contextlib.suppress(OSError):
            if os.getpriority(os.PRIO_PROCESS, tid) < target:
                os.setpriority(os.PRIO_PROCESS, tid, target)
