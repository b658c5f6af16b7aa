"""The fork server's preload step, driven in-process over a socketpair (no fork)."""

from __future__ import annotations

import gc
import json
import os
import socket
import uuid
from pathlib import Path

from devserve.forkserver import ForkServer, copy_heap_pages
from devserve.regexcache import cached_patterns


def _messages(sock: socket.socket) -> list[dict[str, object]]:
    sock.settimeout(5)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        assert chunk, "the fork server closed its control socket"
        data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_preload_compiles_the_reported_patterns(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    read_fd, write_fd = os.pipe()
    server = ForkServer(theirs, read_fd, [str(tmp_path)])
    route = f"^/items/{uuid.uuid4().hex}/(?P<item_id>[^/]+)$"
    try:
        server._preload(["json"], [("s", route, 0), ("s", "(broken", 0)])
        assert _messages(ours) == [{"op": "preloaded", "count": 0, "patterns": 1}]
        assert ("s", route, 0) in cached_patterns()
    finally:
        for fd in (read_fd, write_fd, server._wake_r, server._wake_w):
            os.close(fd)
        ours.close()
        theirs.close()


def test_copying_the_heap_pages_keeps_everything_frozen() -> None:
    marker: list[int] = []  # tracked by the collector
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        copy_heap_pages()
        assert gc.get_freeze_count() >= frozen  # still out of the collector's reach
        assert all(obj is not marker for obj in gc.get_objects())  # frozen again
    finally:
        gc.unfreeze()
