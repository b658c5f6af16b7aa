"""Lines of text to a stream: written and flushed at once, or once per event-loop iteration.

The plain and JSON reporters share this. Unbatched (single-process mode, where app code runs
on the same loop and may block it), every line is written and flushed as it comes, so a
line is never held back behind a handler that sleeps or sits in pdb. Batched (the
supervisor, whose loop runs no app code), the lines of one loop iteration go out in one
write, so a burst of requests costs one syscall, not one per line. Without a running loop
a batched sink writes at once. Write errors (a closed pipe) are ignored: logging must never
take the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TextIO


class LineSink:
    """Buffer complete lines for `stream`.

    Args:
        stream: where the text goes.
        is_batched: write once per event-loop iteration instead of per line.
    """

    def __init__(self, stream: TextIO, *, is_batched: bool) -> None:
        self.stream = stream
        self.is_batched = is_batched
        self._pending: list[str] = []
        self._scheduled = False

    def add(self, text: str) -> None:
        """Queue `text` (one or more lines, each ending in a newline) and write as configured."""
        self._pending.append(text)
        if not self.is_batched:
            self.flush()
            return
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what is queued now."""
        self._scheduled = False
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            with contextlib.suppress(OSError, ValueError):
                self.stream.write(text)
                self.stream.flush()
