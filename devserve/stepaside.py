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
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable


class Acceptor(Protocol):
    """What `Accepting` needs of an `asyncio.Server` or a `TLSAcceptor`: stop accepting."""

    def close(self) -> None:
        """Stop accepting for good."""


@runtime_checkable
class Pausable(Protocol):
    """An acceptor that can stop accepting for a while and go on (a `TLSAcceptor`).

    Closing one would drop the connections still in their TLS handshake; an
    `asyncio.Server` keeps its accepted connections when closed, so it is closed and
    started again instead.
    """

    def pause(self) -> None:
        """Stop accepting for now."""

    def resume(self) -> None:
        """Accept again."""

    def close(self) -> None:
        """Stop accepting for good."""


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
    as before, and so are those still in their TLS handshake (`Pausable`).

    Args:
        starts: one per listener, each starts accepting on it and returns the acceptor.
    """

    def __init__(self, starts: Sequence[Callable[[], Awaitable[Acceptor]]]) -> None:
        self._starts = list(starts)
        self._acceptors: list[Acceptor | None] = [None] * len(self._starts)
        self.is_closed = False
        self._resume: asyncio.TimerHandle | None = None
        self._reopening: asyncio.Future[None] | None = None  # held: a task must be referenced

    async def open(self) -> None:
        """Start accepting on every listener."""
        for index, start in enumerate(self._starts):
            self._acceptors[index] = await start()

    def hold(self, seconds: float) -> None:
        """Accept nothing for `seconds` (from now, if already held), then accept again."""
        if self.is_closed:
            return
        if self._resume is not None:
            self._resume.cancel()
        self._stop_accepting()
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
        for index, acceptor in enumerate(self._acceptors):
            if acceptor is not None:
                acceptor.close()
            self._acceptors[index] = None

    def _resume_now(self) -> None:
        self._resume = None
        self._reopening = asyncio.ensure_future(self._reopen())

    async def _reopen(self) -> None:
        for index, start in enumerate(self._starts):
            if self.is_closed or self.is_held:
                break  # stopped, or held again meanwhile
            acceptor = self._acceptors[index]
            if isinstance(acceptor, Pausable):
                acceptor.resume()
            elif acceptor is None:
                try:
                    self._acceptors[index] = await start()
                except OSError:  # out of descriptors, say: try again a moment later
                    self.hold(_RETRY_S)
                    return
        if self.is_closed:
            self.close()  # what was started meanwhile
        elif self.is_held:
            self._stop_accepting()  # what was started before the new hold waits too

    def _stop_accepting(self) -> None:
        for index, acceptor in enumerate(self._acceptors):
            if isinstance(acceptor, Pausable):
                acceptor.pause()
            elif acceptor is not None:
                acceptor.close()
                self._acceptors[index] = None


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
