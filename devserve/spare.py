"""The fork server's spare: a worker forked in advance, waiting for its generation.

See `devserve.forkserver` ("The spare"). These helpers run in the spare itself: take its own
copy of the inherited heap pages, wait on its socket for the ``go`` message and descriptors,
and show itself as `SPARE_NAME` meanwhile.
"""

from __future__ import annotations

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
    private memory in the worker).
    """
    gc.unfreeze()
    objects = gc.get_objects()
    del objects
    gc.freeze()


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
