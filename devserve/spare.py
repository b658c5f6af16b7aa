"""The fork server's spare: a worker forked in advance, waiting for its generation.

See `devserve.forkserver` ("The spare"). These helpers run in the spare itself: take its own
copy of the inherited heap pages, wait on its socket for the ``go`` message and descriptors,
and show itself as `SPARE_NAME` meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import select
import socket
import sys
from dataclasses import replace
from pathlib import Path

from devserve.handoff import Handoff
from devserve.worker import loop_factory, run_coroutine

#: What ``ps -o comm`` shows for a waiting spare (Linux; at most 15 bytes).
SPARE_NAME = b"devserve-spare"
_PR_SET_NAME = 15
#: Bytes read at a time from a control socket; descriptors received with one message.
CHUNK = 65536
MAX_FDS = 4


def process_name() -> bytes:
    """This process's short name (``/proc/self/comm``), or empty where there is none."""
    try:
        return Path("/proc/self/comm").read_bytes().strip()
    except OSError:
        return b""


def set_process_name(name: bytes) -> None:
    """Set this process's short name (Linux; no-op elsewhere or for an empty name)."""
    if not name or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NAME, ctypes.c_char_p(name[:15]), 0, 0, 0)


def copy_heap_pages() -> None:
    """Take this process's own copy of the pages holding the inherited objects, now.

    A forked child shares the parent's pages until it writes to one; every write (a
    reference count going up when user code looks up ``fastapi.FastAPI``...) then costs a
    page fault and a copy. A spare has time to spare: taking a reference to every tracked
    object copies those pages before the save instead of during the import (2250 -> 850
    faults importing the reload bench's FastAPI app, about 5 ms of CPU; about 15 MB more
    private memory in the worker). `populate_shared_pages` then copies the rest (untracked
    objects: strings, code, the allocator's own pages): about 2 ms less CPU importing that
    app, and about 12 MB more private memory again (33 instead of 22 MB in that worker).
    """
    gc.unfreeze()
    objects = gc.get_objects()
    del objects
    gc.freeze()
    populate_shared_pages()


def rehearse_event_loop() -> None:
    """Run one empty event loop and close it, so that the worker's own starts warm.

    The first loop a forked process runs pays for first uses (pages copied, the loop's
    lazily built parts): 0.65 against 0.27 ms from the runner's start to the first step of
    its coroutine, measured in a spare. The loop is uvloop when it is installed, as
    ``--loop auto`` picks; a worker with ``--loop asyncio`` merely gains less.
    """
    with contextlib.suppress(Exception):
        run_coroutine(asyncio.sleep(0), loop_factory("auto"))


#: ``madvise`` advice (Linux 5.14): fault pages in writable, as a write would, writing nothing.
_MADV_POPULATE_WRITE = 23
#: Mappings larger than this, or resident for less than this share, are left alone: a
#: reservation a library made and barely uses (BLAS buffers, arenas) must not be committed.
POPULATE_MAX_BYTES = 64 * 1024 * 1024
POPULATE_MIN_RESIDENT = 0.5
#: At most this much is copied in all (the reload bench's FastAPI app needs about 8 MB): a
#: process that preloaded a large library keeps sharing the rest with the fork server.
POPULATE_BUDGET_BYTES = 32 * 1024 * 1024


def shared_writable_ranges(smaps: str) -> list[tuple[int, int]]:
    """(start, end) of the private writable mappings worth copying, from ``smaps`` text.

    Worth copying: still sharing pages with the parent, mostly resident already, and
    not larger than `POPULATE_MAX_BYTES`. Stacks and the kernel's own mappings are left.
    """
    ranges: list[tuple[int, int]] = []
    fields: dict[str, int] = {}
    current: tuple[int, int] | None = None

    def close() -> None:
        if current is None:
            return
        size = fields.get("Size", 0) * 1024
        shared = fields.get("Shared_Clean", 0) + fields.get("Shared_Dirty", 0)
        resident = fields.get("Rss", 0) * 1024
        if shared and 0 < size <= POPULATE_MAX_BYTES and resident >= size * POPULATE_MIN_RESIDENT:
            ranges.append(current)

    for line in smaps.splitlines():
        head, _, rest = line.partition(" ")
        if "-" in head and not head.endswith(":"):  # a mapping's header line
            close()
            current, fields = None, {}
            parts = rest.split()
            path = parts[4] if len(parts) > 4 else ""  # noqa: PLR2004 - perms offset dev inode path
            if (
                parts
                and parts[0].startswith("rw")
                and parts[0][3:4] == "p"
                and (path == "[heap]" or not path.startswith("["))
            ):
                start, _, end = head.partition("-")
                current = (int(start, 16), int(end, 16))
        elif head.endswith(":") and rest.strip().endswith("kB"):
            fields[head[:-1]] = int(rest.split()[0])
    close()
    return ranges


def populate_shared_pages() -> int:
    """Copy pages still shared with the fork server (`POPULATE_BUDGET_BYTES` at most) now.

    Returns how many mappings were copied.

    Linux only (``MADV_POPULATE_WRITE``, 5.14 or later); elsewhere, or when anything fails,
    nothing happens and the pages are copied as they are written, as before.
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        smaps = Path("/proc/self/smaps").read_text()
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    done, budget = 0, POPULATE_BUDGET_BYTES
    for start, end in shared_writable_ranges(smaps):
        if end - start > budget:
            continue
        if madvise(start, end - start, _MADV_POPULATE_WRITE) == 0:
            done += 1
            budget -= end - start
    return done


def with_fds(handoff: Handoff, fds: list[int]) -> Handoff:
    """`handoff` with the descriptors received: its event pipe, then its output pipes."""
    output = (fds[1], fds[2]) if len(fds) == 3 else None  # noqa: PLR2004 - events, out, err
    return replace(handoff, events_fd=fds[0], output_fds=output)


def await_handoff(sock: socket.socket, parent_fd: int) -> Handoff | None:
    """In a spare: wait for the generation to serve; None when told to go away."""
    buffer, fds = b"", []
    while b"\n" not in buffer:
        readable, _, _ = select.select([sock.fileno(), parent_fd], [], [])
        if parent_fd in readable:  # only ever readable at end-of-file: the supervisor died
            return None
        data, received, _, _ = socket.recv_fds(sock, CHUNK, MAX_FDS)
        fds.extend(received)
        if not data:  # dropped, or the fork server is gone
            return None
        buffer += data
    sock.close()
    message = json.loads(buffer.split(b"\n", 1)[0])
    return with_fds(Handoff.from_json(message["handoff"]), fds)
