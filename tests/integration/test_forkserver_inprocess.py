"""The fork server's preload step, driven in-process over a socketpair (no fork)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

from devserve import codecache
from devserve.forklauncher import ForkServerLauncher
from devserve.forkserver import ForkServer
from devserve.handoff import Handoff
from devserve.regexcache import cached_patterns
from devserve.spare import copy_heap_pages


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


def test_reported_sources_are_compiled_and_a_stale_spare_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(codecache, "_compiled", {})
    ours, theirs = socket.socketpair()
    read_fd, write_fd = os.pipe()
    server = ForkServer(theirs, read_fd, [str(tmp_path)])
    server._wants_spare = True
    source = tmp_path / "main.py"
    source.write_text("app = None\n")
    message = {"op": "preload", "names": [], "patterns": [], "sources": [str(source)]}
    spares: list[socket.socket] = []

    def waiting_spare() -> None:
        spares.extend(socket.socketpair())
        server._spare = (2**22 + len(spares), spares[-2])

    try:
        waiting_spare()
        server._dispatch(message)
        assert codecache.cached_paths() == [str(source)]
        assert server._spare is None  # it was forked before: it lacks the new code
        assert server._spare_at is not None  # ... and a new one is on its way
        waiting_spare()
        server._dispatch(message)  # nothing changed: the spare stays
        assert server._spare is not None
        assert server._spare[1] is spares[-2]
        ours.setblocking(False)
        with pytest.raises(BlockingIOError):
            ours.recv(1)  # no module to import: no "preloaded" answer
    finally:
        for fd in (read_fd, write_fd, server._wake_r, server._wake_w):
            os.close(fd)
        for sock in (ours, theirs, *spares):
            sock.close()


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


def test_a_fork_request_during_a_preload_is_served_between_two_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save must not wait for (or time out on) a long preload."""
    ours, theirs = socket.socketpair()
    read_fd, write_fd = os.pipe()
    events_r, events_w = os.pipe()
    server = ForkServer(theirs, read_fd, [str(tmp_path)])
    served: list[tuple[int, list[int]]] = []
    server._checked.update(sys.modules)  # this test process holds no project module
    monkeypatch.setattr(server, "_fork", lambda h, fds: served.append((h.generation, fds)))
    imported: list[str] = []

    def fake_import(name: str) -> None:
        imported.append(name)
        if len(imported) == 1:  # the save happens while the first module is imported
            handoff = Handoff("{}", (), (), -1, read_fd, 7, (str(tmp_path),))
            message = json.dumps({"op": "fork", "handoff": handoff.to_json()}).encode() + b"\n"
            socket.send_fds(ours, [message + b'{"op": "spare"}\n'], [events_w])

    monkeypatch.setattr("devserve.forkserver.importlib.import_module", fake_import)
    try:
        server._preload(["not_imported_a", "not_imported_b", "not_imported_c"], [])
        assert [generation for generation, _ in served] == [7]
        assert imported == ["not_imported_a", "not_imported_b", "not_imported_c"]
        assert [m["op"] for m in server._inbox] == ["spare"]  # the rest waits its turn
    finally:
        for fd in (read_fd, write_fd, events_r, events_w, server._wake_r, server._wake_w):
            os.close(fd)
        for _, fds in served:
            for fd in fds:
                os.close(fd)
        ours.close()
        theirs.close()


def test_a_worker_that_exits_before_launch_returns_is_not_lost() -> None:
    """The fork server's "forked" and "exited" can arrive in one read (a worker dying at
    import, #7): the exit must still resolve the worker's future, not wait forever."""

    async def main() -> int:
        ours, theirs = socket.socketpair()
        read_fd, write_fd = os.pipe()
        launcher = ForkServerLauncher(
            inherit_fds=[], parent_fd=read_fd, project_dirs=[], report=lambda _e: None
        )
        ours.setblocking(False)
        launcher._sock = ours
        loop = asyncio.get_running_loop()
        loop.add_reader(ours.fileno(), launcher._readable)
        handoff = Handoff("{}", (), (), write_fd, read_fd, 1, ())
        pid = 2**22 + 12345  # no such process: pidfd_open fails, as for one already reaped

        def answer() -> None:
            loop.remove_reader(theirs.fileno())
            theirs.recv(65536)
            forked = {"op": "forked", "generation": 1, "pid": pid}
            exited = {"op": "exited", "pid": pid, "code": 3}
            theirs.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in (forked, exited)))

        loop.add_reader(theirs.fileno(), answer)
        try:
            worker = await launcher.launch(handoff, [])
            return await asyncio.wait_for(worker.exited, 2)
        finally:
            loop.remove_reader(ours.fileno())
            for sock in (ours, theirs):
                sock.close()
            for fd in (read_fd, write_fd):
                os.close(fd)

    assert asyncio.run(main()) == 3
