"""The preloaded fork server: ``python -m devserve.forkserver``, started by the supervisor.

It imports devserve's worker stack and, once a worker has reported them, the third-party
modules the app uses (never the user's own code), then forks each new worker generation,
so a reload pays only for importing the user's modules.

Fork safety: this process runs no event loop and no thread. It waits in ``select`` on the
control socket, a signal wake-up pipe (SIGCHLD) and the supervisor's parent pipe. After
preloading it checks that no thread was started and that no module from the project
directories slipped in through a third-party import; if either happened it reports the
culprit and exits, and the supervisor rebuilds it without that module (or falls back to
spawning fresh interpreters, saying so).

Control messages are JSON lines; a ``fork`` request carries the worker's event-pipe
descriptor as ancillary data (SCM_RIGHTS)::

    supervisor -> {"op": "fork", "handoff": "..."} + [events_fd]
    supervisor -> {"op": "preload", "names": [...], "patterns": [[kind, text, flags], ...]}
    server     -> {"op": "ready"} | {"op": "forked", "generation": g, "pid": p}
    server     -> {"op": "exited", "pid": p, "code": c}
    server     -> {"op": "preloaded", "count": n, "patterns": m}
    server     -> {"op": "untrusted", "culprit": name, "reason": "..."}
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from devserve.handoff import Handoff
from devserve.regexcache import Pattern, compile_patterns
from devserve.workerproc import die_with_parent
from devserve.workerproc import run as run_worker

MAX_FDS = 4
_CHUNK = 65536


def send_message(
    sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None
) -> None:
    """Send one JSON line, with descriptors attached when given."""
    data = json.dumps(message).encode() + b"\n"
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


class ForkServer:
    """The fork server's state and loop.

    Args:
        control: the socket to the supervisor.
        parent_fd: the parent pipe (end-of-file: the supervisor died).
        project_dirs: directories whose modules must never be preloaded.
    """

    def __init__(self, control: socket.socket, parent_fd: int, project_dirs: list[str]) -> None:
        self.control = control
        self.parent_fd = parent_fd
        self.project_roots = tuple(str(Path(d).resolve()) + os.sep for d in project_dirs)
        self.children: set[int] = set()
        self._checked: set[str] = set()  # modules known not to come from the project
        self._buffer = b""
        self._pending_fds: list[int] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def serve(self) -> int:
        """Answer requests until the supervisor goes away; return the exit code."""
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
        signal.set_wakeup_fd(self._wake_w)
        send_message(self.control, {"op": "ready"})
        while True:
            watched = [self.control.fileno(), self._wake_r, self.parent_fd]
            readable, _, _ = select.select(watched, [], [])
            if self.parent_fd in readable and not os.read(self.parent_fd, 1):
                return 0
            if self._wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 512)
                self._reap()
            if self.control.fileno() in readable and not self._read_control():
                return 0

    def _read_control(self) -> bool:
        data, fds, _, _ = socket.recv_fds(self.control, _CHUNK, MAX_FDS)
        if not data:
            return False
        self._buffer += data
        self._pending_fds.extend(fds)
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            message = json.loads(line)
            if message["op"] == "fork":
                self._fork(Handoff.from_json(message["handoff"]), self._pending_fds.pop(0))
            elif message["op"] == "preload":
                patterns = [(str(k), str(t), int(f)) for k, t, f in message.get("patterns", ())]
                self._preload(message["names"], patterns)
        return True

    def _fork(self, handoff: Handoff, events_fd: int) -> None:
        handoff = replace(handoff, events_fd=events_fd)
        # Move everything preloaded out of the collector's reach: a child whose GC walks
        # the inherited heap touches (and so copies) every page of it after fork.
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the new worker
            code = 1
            try:
                self._become_worker()
                code = run_worker(handoff, started_at=time.monotonic())
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(code)
        os.close(events_fd)
        self.children.add(pid)
        send_message(self.control, {"op": "forked", "generation": handoff.generation, "pid": pid})

    def _become_worker(self) -> None:
        # No parent-death signal here: a worker must outlive a fork-server rebuild. It
        # still exits when the supervisor dies (end-of-file on the parent pipe).
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor's SIGTERM stops workers
        self.control.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            send_message(self.control, {"op": "exited", "pid": pid, "code": code})

    def _preload(self, names: list[str], patterns: list[Pattern]) -> None:
        count = 0
        for name in names:
            if name in sys.modules:
                continue
            with contextlib.suppress(BaseException):
                importlib.import_module(name)
                count += 1
            reason = self._untrusted_reason()
            if reason is not None:
                send_message(self.control, {"op": "untrusted", "culprit": name, "reason": reason})
                raise SystemExit(0)
        # After the imports: a pattern compiles without running any code, project or not.
        compiled = compile_patterns(patterns)
        send_message(self.control, {"op": "preloaded", "count": count, "patterns": compiled})

    def _untrusted_reason(self) -> str | None:
        if threading.active_count() > 1:
            return "a preloaded module started a thread"
        # Only modules new since the last check: resolving every path after every import
        # made a preload of 250 names take seconds.
        for name, module in list(sys.modules.items()):
            if name in self._checked:
                continue
            filename = getattr(module, "__file__", None)
            if filename and str(Path(filename).resolve()).startswith(self.project_roots):
                return f"preloading imported project module {name!r}"
            self._checked.add(name)
        return None


def main() -> None:
    """Entry point: ``python -m devserve.forkserver CONTROL_FD PARENT_FD PROJECT_DIRS_JSON``."""
    die_with_parent()
    control = socket.socket(fileno=int(sys.argv[1]))
    server = ForkServer(control, int(sys.argv[2]), json.loads(sys.argv[3]))
    sys.exit(server.serve())


if __name__ == "__main__":
    main()
