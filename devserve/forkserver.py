"""The preloaded fork server: ``python -m devserve.forkserver``, started by the supervisor.

It imports devserve's worker stack and, once a worker has reported them, the third-party
modules the app uses (never the user's own code), then forks each new worker generation,
so a reload pays only for importing the user's modules.

Fork safety: this process runs no event loop and no thread. It waits in ``select`` on the
control socket, a signal wake-up pipe (SIGCHLD) and the supervisor's parent pipe. After
preloading it checks that no thread was started and that no module from the project
directories slipped in through a third-party import; if either happened it reports the
culprit and exits, and the supervisor rebuilds it without that module (or falls back to
spawning fresh interpreters, saying so). A fork request that arrives during a preload is
served between two imports, never after the whole list.

**The spare.** Forking a process this size costs milliseconds (page tables), and so do the
child's first steps; a reload should not wait for them. When the supervisor says a reload
finished (``spare``), the server forks the next worker in advance, once the new worker's
first requests had `SPARE_DELAY_S` to go first. The spare waits, importing nothing, until
the next ``fork`` hands it the generation (and its event pipe) over its own socket. A
preload drops the spare (it would lack the new modules) and forks a fresh one; a spare
whose socket closes (dropped, or the fork server gone) or whose parent pipe ends exits.

**Project code, compiled.** A preload message also names the project's source files the
last worker imported; the server compiles those that changed (`devserve.codecache`: no
module code runs) and its workers import them without compiling again.

Control messages are JSON lines; a ``fork`` request carries the worker's event-pipe
descriptor (and, when the supervisor captures output, its stdout and stderr pipes) as
ancillary data (SCM_RIGHTS); ``go`` hands them on to the spare the same way::

    supervisor -> {"op": "fork", "handoff": "..."} + [events_fd]
    supervisor -> {"op": "spare"}
    supervisor -> {"op": "preload", "names": [...], "patterns": [[kind, text, flags], ...],
                   "sources": [path, ...]}
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
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from devserve import codecache
from devserve.handoff import Handoff
from devserve.regexcache import Pattern, compile_patterns
from devserve.spare import (
    CHUNK,
    MAX_FDS,
    SPARE_NAME,
    await_handoff,
    copy_heap_pages,
    process_name,
    rehearse_event_loop,
    set_process_name,
    with_fds,
)
from devserve.workerproc import die_with_parent
from devserve.workerproc import run as run_worker

#: Seconds after the ``spare`` hint before the spare is forked (out of the way of the
#: first requests to the worker that just became ready).
SPARE_DELAY_S = 0.15


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
        self._spare: tuple[int, socket.socket] | None = None  # (pid, our end of its socket)
        self._spare_at: float | None = None  # when to fork the next spare
        self._wants_spare = False
        self._unreported: set[int] = set()  # spares that exited without serving
        self._buffer = b""
        self._pending_fds: list[int] = []
        self._inbox: deque[dict[str, Any]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def serve(self) -> int:
        """Answer requests until the supervisor goes away; return the exit code."""
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
        signal.signal(signal.SIGTERM, _exit_on_signal)  # ... with SIGTERM: clean up first
        signal.set_wakeup_fd(self._wake_w)
        try:
            send_message(self.control, {"op": "ready"})
        except OSError:  # the supervisor gave up before we were up (a bad --ssl-certfile...)
            return 0
        try:
            return self._loop()
        finally:
            # The supervisor closes the channel, then sends SIGTERM: the second must not
            # cut this cleanup short.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self._end_spares()

    def _loop(self) -> int:
        while True:
            watched = [self.control.fileno(), self._wake_r, self.parent_fd]
            timeout = None
            if self._spare_at is not None:
                timeout = max(0.0, self._spare_at - time.monotonic())
            readable, _, _ = select.select(watched, [], [], timeout)
            if self.parent_fd in readable and not os.read(self.parent_fd, 1):
                return 0
            if self._wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 512)
                self._reap()
            if self.control.fileno() in readable and not self._read_control():
                return 0
            if self._spare_at is not None and time.monotonic() >= self._spare_at:
                self._spare_at = None
                self._fork_spare()

    def _read_control(self) -> bool:
        """Carry out what the supervisor sent; False once it closed the channel."""
        if not self._receive():
            return False
        while self._inbox:
            self._dispatch(self._inbox.popleft())
        return True

    def _receive(self) -> bool:
        data, fds, _, _ = socket.recv_fds(self.control, CHUNK, MAX_FDS)
        if not data:
            return False
        self._buffer += data
        self._pending_fds.extend(fds)  # those of each fork request, in order
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._inbox.append(json.loads(line))
        return True

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message["op"] == "fork":
            handoff = Handoff.from_json(message["handoff"])
            count = 3 if handoff.output_fds else 1
            fds, self._pending_fds = self._pending_fds[:count], self._pending_fds[count:]
            self._fork(handoff, fds)
        elif message["op"] == "preload":
            patterns = [(str(k), str(t), int(f)) for k, t, f in message.get("patterns", ())]
            if message["names"] or patterns:
                self._drop_spare()  # it would lack what is preloaded now
                self._preload(message["names"], patterns)
            sources = [str(path) for path in message.get("sources", ())]
            if codecache.refresh(sources, between=self._fork_if_asked):
                self._drop_spare()  # it would compile them again
            self._arm_spare()
        elif message["op"] == "spare":
            self._wants_spare = True
            self._arm_spare()

    def _fork_if_asked(self) -> None:
        """Between two preloaded imports, serve a fork request that came meanwhile.

        Preloading a FastAPI app's 250 modules takes half a second of CPU, seconds on a
        busy machine: a save must not wait for it (nor time out waiting, which would
        give up the fork server for the session). The worker then imports the rest itself.
        """
        readable, _, _ = select.select([self.control.fileno()], [], [], 0)
        if readable and not self._receive():
            return  # end-of-file: the main loop sees it next
        for message in [m for m in self._inbox if m["op"] == "fork"]:
            self._inbox.remove(message)
            self._dispatch(message)

    def _fork(self, handoff: Handoff, fds: list[int]) -> None:
        """Start a worker for `handoff` with `fds`: its event pipe, then its output pipes."""
        pid = self._hand_to_spare(handoff, fds)
        if pid is None:
            pid = self._fork_worker(with_fds(handoff, fds))
        for fd in fds:
            os.close(fd)
        self.children.add(pid)
        send_message(self.control, {"op": "forked", "generation": handoff.generation, "pid": pid})

    def _hand_to_spare(self, handoff: Handoff, fds: list[int]) -> int | None:
        """Give the generation to the waiting spare; its pid, or None if there is none."""
        spare, self._spare = self._spare, None
        self._spare_at = None  # the next hint comes when this generation is ready
        if spare is None:
            return None
        pid, sock = spare
        try:
            send_message(sock, {"op": "go", "handoff": handoff.to_json()}, fds)
        except OSError:  # it died meanwhile: fork as usual
            self._unreported.add(pid)
            return None
        finally:
            sock.close()
        return pid

    def _arm_spare(self) -> None:
        if self._wants_spare and self._spare is None:
            self._spare_at = time.monotonic() + SPARE_DELAY_S

    def _end_spares(self) -> None:
        """Kill and reap every spare not serving yet: none may outlive this server."""
        self._drop_spare()
        for pid in sorted(self._unreported):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.children.discard(pid)
        self._unreported.clear()

    def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            self._unreported.add(spare[0])
            spare[1].close()  # end-of-file: it exits

    def _fork_spare(self) -> None:
        ours, theirs = socket.socketpair()
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the spare: wait for a generation to serve

            def wait_and_serve() -> int:
                ours.close()
                return self._spare_main(theirs)

            _child(wait_and_serve)
        theirs.close()
        self.children.add(pid)
        self._spare = (pid, ours)

    def _spare_main(self, sock: socket.socket) -> int:
        """The spare's life: wait (named `SPARE_NAME`) for a generation, then serve it."""
        self._become_worker()
        name = process_name()
        set_process_name(SPARE_NAME)
        copy_heap_pages()
        rehearse_event_loop()
        handoff = await_handoff(sock, self.parent_fd)
        if handoff is None:
            return 0
        set_process_name(name)
        return run_worker(handoff, started_at=time.monotonic())

    def _fork_worker(self, handoff: Handoff) -> int:
        # Move everything preloaded out of the collector's reach: a child whose GC walks
        # the inherited heap touches (and so copies) every page of it after fork.
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the new worker

            def serve() -> int:
                self._become_worker()
                return run_worker(handoff, started_at=time.monotonic())

            _child(serve)
        return pid

    def _become_worker(self) -> None:
        # No parent-death signal here: a worker must outlive a fork-server rebuild. It
        # still exits when the supervisor dies (end-of-file on the parent pipe).
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor's SIGTERM stops workers
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
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
            if pid in self._unreported:
                self._unreported.discard(pid)
                continue
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
            self._fork_if_asked()
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


def _child(main: Callable[[], int]) -> NoReturn:
    """Run a forked child's `main` and leave with its code, never back into the fork server.

    `os._exit` skips the interpreter's clean-up, which would otherwise run the fork server's
    inherited atexit handlers and hide an exception: so a failure is printed first.
    """
    code = 1
    try:
        code = main()
    except BaseException:  # noqa: BLE001 - os._exit below would hide it: print it
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Entry point: ``python -m devserve.forkserver CONTROL_FD PARENT_FD PROJECT_DIRS_JSON``."""
    die_with_parent()
    control = socket.socket(fileno=int(sys.argv[1]))
    server = ForkServer(control, int(sys.argv[2]), json.loads(sys.argv[3]))
    sys.exit(server.serve())


if __name__ == "__main__":
    main()
