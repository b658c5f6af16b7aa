"""Tests of `devserve.spare`'s preparations: which mappings it copies, the loop it rehearses."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devserve import spare
from devserve.spare import (
    POPULATE_MAX_BYTES,
    populate_shared_pages,
    rehearse_event_loop,
    shared_writable_ranges,
)


def mapping(
    start: int, size_kb: int, perms: str, path: str = "", *, rss_kb: int, shared_kb: int
) -> str:
    end = start + size_kb * 1024
    return (
        f"{start:x}-{end:x} {perms} 00000000 00:00 0 {path}\n"
        f"Size:           {size_kb} kB\n"
        f"Rss:            {rss_kb} kB\n"
        f"Shared_Clean:   0 kB\n"
        f"Shared_Dirty:   {shared_kb} kB\n"
        f"Private_Dirty:  {rss_kb - shared_kb} kB\n"
        "VmFlags: rd wr mr mw me ac\n"
    )


def test_only_shared_private_writable_mostly_resident_mappings_are_picked() -> None:
    big_kb = POPULATE_MAX_BYTES // 1024 + 4
    smaps = "".join(
        [
            mapping(0x1000, 64, "rw-p", "/usr/lib/libx.so", rss_kb=64, shared_kb=60),  # picked
            mapping(0x100000, 1024, "rw-p", rss_kb=900, shared_kb=100),  # anonymous: picked
            mapping(0x200000, 64, "r-xp", "/usr/lib/libx.so", rss_kb=64, shared_kb=64),  # code
            mapping(0x300000, 64, "rw-s", "/dev/shm/x", rss_kb=64, shared_kb=64),  # shared map
            mapping(0x400000, 64, "rw-p", rss_kb=64, shared_kb=0),  # copied already
            mapping(0x500000, 1024, "rw-p", rss_kb=100, shared_kb=100),  # a reservation
            mapping(0x10000000, big_kb, "rw-p", rss_kb=big_kb, shared_kb=big_kb),  # too big
            mapping(0x20000000, 256, "rw-p", "[heap]", rss_kb=256, shared_kb=256),  # picked
            mapping(0x7F0000000000, 132, "rw-p", "[stack]", rss_kb=132, shared_kb=132),
        ]
    )
    assert shared_writable_ranges(smaps) == [
        (0x1000, 0x11000),
        (0x100000, 0x200000),
        (0x20000000, 0x20040000),
    ]
    assert shared_writable_ranges("") == []


def in_child(report: Callable[[], str]) -> str:
    """Run `report` in a forked child; return what it returned (the child must exit 0)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            os.close(read_fd)
            os.write(write_fd, report().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as reader:
            text = reader.read().decode()
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return text


def populate_and_count() -> str:
    smaps = Path("/proc/self/smaps")
    picked = len(shared_writable_ranges(smaps.read_text()))
    done = populate_shared_pages()
    left = len(shared_writable_ranges(smaps.read_text()))
    return f"{picked} {done} {left}"


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Linux's MADV_POPULATE_WRITE"
)


@linux_only
def test_a_forked_child_copies_what_it_shares_and_carries_on() -> None:
    picked, done, left = (int(n) for n in in_child(populate_and_count).split())
    assert picked > 0  # a fresh child shares the parent's heap
    if done == 0:
        pytest.skip("this kernel has no MADV_POPULATE_WRITE (Linux < 5.14)")
    assert left <= picked - done  # what it copied is no longer shared


@linux_only
def test_nothing_is_copied_beyond_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spare, "POPULATE_BUDGET_BYTES", 0)
    picked, done, left = (int(n) for n in in_child(populate_and_count).split())
    assert picked > 0
    assert (done, left) == (0, picked)


def test_rehearsing_an_event_loop_leaves_signals_and_loops_as_they_were() -> None:
    handler = signal.getsignal(signal.SIGINT)
    rehearse_event_loop()
    assert signal.getsignal(signal.SIGINT) is handler
    assert signal.set_wakeup_fd(-1) == -1  # none left behind
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
