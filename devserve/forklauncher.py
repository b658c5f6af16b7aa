"""Supervisor side of the preloaded fork server (see `devserve.forkserver`).

`ForkServerLauncher` starts the fork server, asks it to fork each worker generation and
tells it which third-party modules to preload (learned from the previous worker). Any
doubt sends it back to the portable path, a fresh interpreter per worker
(`SpawnLauncher`), and the user is told once:

* the fork server does not start or answer in time;
* preloading pulled in project code or started a thread: it is rebuilt without the
  culprit module, and after `MAX_REBUILDS` rebuilds forking is given up for the session;
* the platform has no ``fork`` (Windows).

`restart` rebuilds it from scratch when dependencies change (pyproject.toml, lockfiles).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
from collections.abc import Callable, Sequence

from devserve.config import Config
from devserve.earlyfork import (
    SpawnedForkServer,
    fork_server_fds,
    spawn_fork_server,
    uses_fork_server,
)
from devserve.events import Event, LogLine
from devserve.handoff import Handoff
from devserve.process import UNKNOWN_EXIT, SpawnLauncher, WorkerProcess
from devserve.regexcache import Pattern
from devserve.sockets import Listener

MAX_REBUILDS = 3
START_TIMEOUT_S = 10.0
FORK_TIMEOUT_S = 5.0
#: How long after a forked worker is gone its fork server's "exited" message (the real exit
#: code) may take; a loaded machine needs far more than the usual millisecond. Past it the
#: code is reported as unknown (`UNKNOWN_EXIT`).
EXIT_MESSAGE_WAIT_S = 2.0


class ForkServerLauncher:
    """Fork workers from a preloaded server; spawn when that cannot be trusted.

    Args:
        inherit_fds: descriptors the fork server must hold for its children (listeners
            and the parent pipe), with the same numbers.
        parent_fd: the read end of the supervisor's parent pipe.
        project_dirs: the watched directories (never preloaded).
        report: where to say what happened.
        is_stdout_captured: workers' output is captured (``--ui json``/``tui``): the fork
            server's own stdout (what a preloaded module prints) goes to stderr, so stdout
            stays the supervisor's alone.
    """

    def __init__(
        self,
        *,
        inherit_fds: Sequence[int],
        parent_fd: int,
        project_dirs: Sequence[str],
        report: Callable[[Event], None],
        is_stdout_captured: bool = False,
    ) -> None:
        self.inherit_fds = list(inherit_fds)
        self.is_stdout_captured = is_stdout_captured
        self.parent_fd = parent_fd
        self.project_dirs = list(project_dirs)
        self.report = report
        self.fallback = SpawnLauncher()
        self.is_disabled = not hasattr(os, "fork")
        self.rebuilds = 0
        self.preloaded: list[str] = []
        self.patterns: dict[Pattern, None] = {}  # compiled in the fork server, in order
        self.blocklist: set[str] = set()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._ready: asyncio.Future[None] | None = None
        self._forks: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        #: Exit codes that arrived before `launch` had the pid (a worker dying at once).
        self._early_exits: dict[int, int] = {}

    @property
    def strategy(self) -> str:
        """How workers start now: "fork" while the fork server is trusted, else "spawn"."""
        return "spawn" if self.is_disabled else "fork"

    def adopt(self, spawned: SpawnedForkServer) -> None:
        """Use a fork server already started (`devserve.earlyfork`); `start` waits for it."""
        if self.is_disabled or self._proc is not None:
            spawned.stop()
            return
        self._proc, self._sock, self._buffer = spawned.proc, spawned.sock, b""

    async def start(self) -> None:
        """Start the fork server (unless one was adopted) and wait until it is ready."""
        if self.is_disabled:
            return
        if self._proc is None:
            self.adopt(
                spawn_fork_server(
                    inherit_fds=self.inherit_fds,
                    parent_fd=self.parent_fd,
                    project_dirs=self.project_dirs,
                    stdout_to_stderr=self.is_stdout_captured,
                )
            )
        if self._sock is None:
            return
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        loop.add_reader(self._sock.fileno(), self._readable)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError):
            self._give_up("the fork server did not start")
            return
        if self.preloaded or self.patterns:
            self._send({"op": "preload", "names": self.preloaded, "patterns": list(self.patterns)})

    async def restart(self) -> None:
        """Rebuild from scratch (dependencies changed): preloads are learned again."""
        self.preloaded = []
        self.patterns = {}
        await self._stop_server()
        if not self.is_disabled:
            await self.start()

    async def launch(self, handoff: Handoff, pass_fds: list[int]) -> WorkerProcess:
        """Fork a worker for `handoff` (or spawn one when forking is off)."""
        if self.is_disabled or self._sock is None:
            return await self.fallback.launch(handoff, pass_fds)
        loop = asyncio.get_running_loop()
        forked: asyncio.Future[int] = loop.create_future()
        self._forks[handoff.generation] = forked
        try:
            message = json.dumps({"op": "fork", "handoff": handoff.to_json()}).encode() + b"\n"
            fds = [handoff.events_fd, *(handoff.output_fds or ())]
            socket.send_fds(self._sock, [message], fds)
            pid = await asyncio.wait_for(forked, FORK_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError, ConnectionError):
            self._forks.pop(handoff.generation, None)
            self._give_up("the fork server stopped answering")
            return await self.fallback.launch(handoff, pass_fds)
        exited: asyncio.Future[int] = loop.create_future()
        early = self._early_exits.pop(pid, None)
        if early is not None:  # "forked" and "exited" came in one read: it is already gone
            exited.set_result(early)
        else:
            self._exits[pid] = exited
            self._watch_pid(pid, exited)
        return WorkerProcess(handoff.generation, pid, exited, "fork")

    def _watch_pid(self, pid: int, exited: asyncio.Future[int]) -> None:
        """Notice the worker's exit even if the fork server is gone (Linux pidfd).

        The fork server's ``exited`` message carries the exit code; when it does not come
        shortly after the process is gone, the code is reported as unknown (`UNKNOWN_EXIT`).
        """
        if not hasattr(os, "pidfd_open"):
            return
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return
        loop = asyncio.get_running_loop()

        def unknown_code() -> None:
            if not exited.done():
                exited.set_result(UNKNOWN_EXIT)

        def gone() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            # A worker whose fork server was rebuilt is now our child (we are a subreaper):
            # reap it ourselves; otherwise its fork server reports the exit code.
            with contextlib.suppress(ChildProcessError, OSError):
                reaped, status = os.waitpid(pid, os.WNOHANG)
                if reaped == pid and not exited.done():
                    exited.set_result(os.waitstatus_to_exitcode(status))
            loop.call_later(EXIT_MESSAGE_WAIT_S, unknown_code)

        loop.add_reader(pidfd, gone)

    def preload(self, names: list[str], patterns: list[Pattern], sources: list[str]) -> None:
        """Ask the fork server to import modules and compile patterns a worker used (once).

        `sources` (the project's files the worker imported) go every time: the fork server
        compiles those that changed since (`devserve.codecache`).
        """
        known = set(self.preloaded)
        new = [n for n in names if n not in known and n not in self.blocklist]
        fresh = [p for p in dict.fromkeys(patterns) if p not in self.patterns]
        if not (new or fresh or sources) or self.is_disabled or self._sock is None:
            return
        self.preloaded.extend(new)
        self.patterns.update(dict.fromkeys(fresh))
        self._send({"op": "preload", "names": new, "patterns": fresh, "sources": sources})

    def prepare_next(self) -> None:
        """A reload finished: have the next worker forked in advance (the spare)."""
        if not self.is_disabled:
            self._send({"op": "spare"})

    async def close(self) -> None:
        """Stop the fork server (its children are stopped by the supervisor)."""
        await self._stop_server()

    # -- the control channel ------------------------------------------------------------

    def _send(self, message: dict[str, object]) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendall(json.dumps(message).encode() + b"\n")
        except (BlockingIOError, OSError):
            self._give_up("the fork server's control channel broke")

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._server_gone()
            return
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._handle(json.loads(line))

    def _handle(self, message: dict[str, object]) -> None:
        op = message.get("op")
        if op == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        elif op == "forked":
            future = self._forks.pop(int(message["generation"]), None)  # type: ignore[call-overload]
            if future is not None and not future.done():
                future.set_result(int(message["pid"]))  # type: ignore[call-overload]
        elif op == "exited":
            pid = int(message["pid"])  # type: ignore[call-overload]
            code = int(message["code"])  # type: ignore[call-overload]
            exited = self._exits.pop(pid, None)
            if exited is None:
                self._early_exits[pid] = code  # `launch` has not seen the pid yet
            elif not exited.done():
                exited.set_result(code)
        elif op == "untrusted":
            culprit = str(message["culprit"])
            self.blocklist.add(culprit)
            self.report(
                LogLine(
                    "warning", f"fork server: {message['reason']}; rebuilding without {culprit}"
                )
            )
            asyncio.get_running_loop().create_task(self._rebuild())

    async def _rebuild(self) -> None:
        self.rebuilds += 1
        if self.rebuilds > MAX_REBUILDS:
            self._give_up("preloading kept importing project code")
            return
        self.preloaded = [n for n in self.preloaded if n not in self.blocklist]
        await self._stop_server()
        await self.start()

    def _server_gone(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ConnectionError("fork server exited"))
        # Its children live on (they exit with the supervisor); pidfds report their exits.
        if not hasattr(os, "pidfd_open"):
            for exited in self._exits.values():
                if not exited.done():
                    exited.set_result(UNKNOWN_EXIT)
            self._exits.clear()

    async def _stop_server(self) -> None:
        proc, self._proc = self._proc, None
        self._server_gone()
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 2.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.to_thread(proc.wait)

    def _give_up(self, why: str) -> None:
        if not self.is_disabled:
            self.is_disabled = True
            self.report(LogLine("warning", f"{why}: starting workers in fresh interpreters"))
        asyncio.get_running_loop().create_task(self._stop_server())


def default_launcher(
    config: Config,
    listeners: list[Listener],
    parent_read: int,
    *,
    report: Callable[[Event], None],
    capture_output: bool,
    spawned: SpawnedForkServer | None = None,
) -> ForkServerLauncher | SpawnLauncher:
    """The preloaded fork server where it can work (``--reload-preload``, POSIX), else spawn.

    ``spawned``: the fork server `devserve.earlyfork` already started for it, adopted.
    """
    if not uses_fork_server(config):
        return SpawnLauncher()
    launcher = ForkServerLauncher(
        inherit_fds=fork_server_fds(listeners, parent_read),
        parent_fd=parent_read,
        project_dirs=config.project_dirs,
        report=report,
        is_stdout_captured=capture_output,
    )
    if spawned is not None:
        launcher.adopt(spawned)
    return launcher
