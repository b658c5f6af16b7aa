"""A worker's stdout and stderr as pipes the supervisor reads line by line.

With ``--ui json`` or ``tui`` the app's output must not reach the terminal directly (it
would corrupt the JSON stream or the dashboard): the supervisor makes two pipes per worker
generation, hands their write ends over with the other descriptors
(`devserve.handoff.Handoff.output_fds`; the worker puts them on fds 1 and 2), and reads the
read ends with the event loop. Each complete line becomes one `AppOutput` event; a line
longer than `MAX_LINE_BYTES` is cut there, and a partial last line is reported at
end-of-file. Reading never blocks, and the pipes are always drained, so a ``print()`` in
the app never waits on the supervisor for longer than a pipe buffer takes to fill.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from devserve.events import AppOutput, Event

MAX_LINE_BYTES = 16 * 1024
_CHUNK = 65536


class OutputPipes:
    """The stdout and stderr pipes of one worker generation.

    Args:
        generation: the worker generation, put in each event.
        report: where `AppOutput` events go.
    """

    def __init__(self, generation: int, report: Callable[[Event], None]) -> None:
        self.generation = generation
        self.report = report
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.write_fds: tuple[int, int] = (out_w, err_w)
        self._is_write_open = True
        self._readers = {out_r: "stdout", err_r: "stderr"}
        self._partial: dict[int, bytes] = {out_r: b"", err_r: b""}
        #: Set once both pipes reached end-of-file (the worker and its children are gone).
        self.closed = asyncio.Event()

    def start(self) -> None:
        """Close the write ends (the worker holds them now) and start reading."""
        self._close_write_ends()
        loop = asyncio.get_running_loop()
        for fd in self._readers:
            os.set_blocking(fd, False)
            loop.add_reader(fd, self._readable, fd)

    def close(self) -> None:
        """Stop reading and close every end still open (the worker never started)."""
        self._close_write_ends()
        for fd in list(self._readers):
            self._finish(fd)

    def _close_write_ends(self) -> None:
        if self._is_write_open:
            self._is_write_open = False
            for fd in self.write_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._finish(fd)
            return
        buffer = self._partial[fd] + data
        *lines, rest = buffer.split(b"\n")
        while len(rest) > MAX_LINE_BYTES:
            lines.append(rest[:MAX_LINE_BYTES])
            rest = rest[MAX_LINE_BYTES:]
        self._partial[fd] = rest
        for line in lines:
            self._emit(fd, line)

    def _emit(self, fd: int, line: bytes) -> None:
        text = line.decode("utf-8", "replace").removesuffix("\r")
        self.report(AppOutput(self._readers[fd], text, self.generation))

    def _finish(self, fd: int) -> None:
        if fd not in self._readers:
            return
        if self._partial[fd]:
            self._emit(fd, self._partial[fd])
            self._partial[fd] = b""
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_reader(fd)
        del self._readers[fd]
        with contextlib.suppress(OSError):
            os.close(fd)
        if not self._readers:
            self.closed.set()
