"""The supervisor's side of worker exits and crash pages (#7).

A worker can die without a word over its event channel: ``os._exit()`` at import, a fatal
error in native code, a signal. The supervisor then knows only the exit status and, when it
reads the workers' output through pipes (``--ui tui``/``json``), what the worker last
wrote. `OutputTails` keeps those last lines per generation; `crash_for` turns the policy's
`devserve.policy.SpawnCrashPage` into the `devserve.handoff.Crash` the crash page shows;
`exit_event` is the ``WorkerExited`` fact every output mode reports; `wait_drained` bounds
the wait for a dead worker's pipes to empty, so its last events count before its exit.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from devserve import events as ev
from devserve.events import AppOutput, Event
from devserve.handoff import Crash
from devserve.policy import SpawnCrashPage, WorkerCrashed
from devserve.process import exit_parts

#: How many of a worker's last output lines a crash page shows.
TAIL_LINES = 20
#: Longest shown line, in characters (the page is for reading, not for a dump).
TAIL_LINE_CHARS = 400


class OutputTails:
    """The last `TAIL_LINES` lines each live worker generation wrote.

    Args:
        is_read: the workers' output comes through the supervisor's pipes (else it goes to
            the terminal, and there is nothing to keep).
    """

    def __init__(self, *, is_read: bool) -> None:
        self.is_read = is_read
        self._lines: dict[int, deque[str]] = {}

    def observing(
        self, generation: int, report: Callable[[Event], None]
    ) -> Callable[[Event], None]:
        """`report` for `generation`'s output pipes, keeping each line it passes on."""
        lines = self._lines.setdefault(generation, deque(maxlen=TAIL_LINES))

        def observe(event: Event) -> None:
            if isinstance(event, AppOutput):
                lines.append(event.line[:TAIL_LINE_CHARS])
            report(event)

        return observe

    def forget(self, generation: int) -> None:
        """The generation is gone and its crash (if any) was handed on."""
        self._lines.pop(generation, None)

    def crash_for(self, action: SpawnCrashPage) -> Crash:
        """What the crash page for `action` shows."""
        code, signal = exit_parts(action.code)
        return Crash(
            generation=action.crashed,
            code=code,
            signal=signal,
            output=tuple(self._lines.get(action.crashed, ())),
            is_output_read=self.is_read,
            retry_in_s=action.retry_in_s,
        )


def exit_event(
    generation: int, pid: int, code: int, crash: WorkerCrashed | None
) -> ev.WorkerExited:
    """The reported fact of a worker's exit (`crash`: the policy's verdict, if a crash)."""
    status, signal = exit_parts(code)
    return ev.WorkerExited(
        generation,
        pid,
        code=status,
        signal=signal,
        is_expected=crash is None,
        retry_in_s=crash.retry_in_s if crash is not None else None,
        has_crash_page=crash is not None and crash.has_crash_page,
    )


async def wait_drained(closed: list[asyncio.Event], timeout_s: float) -> None:
    """Wait until every event is set, for at most `timeout_s`."""
    waiters = [asyncio.ensure_future(event.wait()) for event in closed]
    _, pending = await asyncio.wait(waiters, timeout=timeout_s)
    for waiter in pending:
        waiter.cancel()
