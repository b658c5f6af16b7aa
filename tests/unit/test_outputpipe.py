"""Tests for devserve.outputpipe: a worker's output pipes read as AppOutput lines.

Real pipes, no processes: the test writes to the write ends as a worker would.
"""

from __future__ import annotations

import asyncio
import os

from devserve.events import AppOutput, Event
from devserve.outputpipe import MAX_LINE_BYTES, OutputPipes
from tests.helpers import run_async


def test_lines_from_both_streams_become_events() -> None:
    seen: list[Event] = []

    async def scenario() -> None:
        pipes = OutputPipes(3, seen.append)
        out_w, err_w = (os.dup(fd) for fd in pipes.write_fds)  # the "worker's" copies
        pipes.start()
        os.write(out_w, b"hello\nwor")
        os.write(err_w, b"oops\r\n")
        while len(seen) < 2:
            await asyncio.sleep(0.01)
        os.write(out_w, "ld ✓\n".encode())
        os.close(out_w)
        os.close(err_w)
        while len(seen) < 3 or pipes._readers:
            await asyncio.sleep(0.01)

    run_async(scenario(), timeout_s=5)
    out = [e for e in seen if isinstance(e, AppOutput) and e.stream == "stdout"]
    err = [e for e in seen if isinstance(e, AppOutput) and e.stream == "stderr"]
    assert out == [AppOutput("stdout", "hello", 3), AppOutput("stdout", "world ✓", 3)]
    assert err == [AppOutput("stderr", "oops", 3)]


def test_a_partial_last_line_and_overlong_lines_are_reported() -> None:
    seen: list[Event] = []

    async def scenario() -> None:
        pipes = OutputPipes(1, seen.append)
        out_w = os.dup(pipes.write_fds[0])
        pipes.start()
        os.write(out_w, b"x" * (MAX_LINE_BYTES + 10))
        os.write(out_w, b"no newline")
        os.close(out_w)
        while pipes._readers:
            await asyncio.sleep(0.01)

    run_async(scenario(), timeout_s=5)
    assert [e.line for e in seen if isinstance(e, AppOutput)] == [
        "x" * MAX_LINE_BYTES,
        "x" * 10 + "no newline",
    ]


def test_close_before_start_releases_every_descriptor() -> None:
    pipes = OutputPipes(1, lambda _event: None)
    fds = [*pipes.write_fds, *pipes._readers]

    async def scenario() -> None:
        pipes.close()

    run_async(scenario())
    for fd in fds:
        try:
            os.fstat(fd)
        except OSError:
            continue
        raise AssertionError(f"fd {fd} still open")
