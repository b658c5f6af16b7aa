"""``--reload``: hold the sockets, watch the files, swap worker generations.

The supervisor binds the listening sockets once and keeps them open for its whole life,
so a client never sees a refused connection during a reload: connections wait in the
backlog or are accepted by whichever worker is up. It never imports the user's app.

It is a thin shell around `devserve.policy.ReloadPolicy`: inputs come from the watcher
(`FilesChanged`), from workers' event channels (`WorkerReady` when one reports
`ServerStarted`), from process exits (`WorkerExited`), from signals (`StopRequested`;
SIGHUP reloads) and from backoff timers; the policy answers with actions the supervisor
carries out. Worker events (requests, errors) go to the reporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

from devserve.config import Config
from devserve.events import (
    Event,
    LogLine,
    ModulesLoaded,
    ServerStarted,
    ServerStopping,
    StartupFailed,
)
from devserve.forklauncher import ForkServerLauncher
from devserve.handoff import Handoff
from devserve.ipc import EventReceiver
from devserve.policy import (
    Action,
    BackoffElapsed,
    FilesChanged,
    Finished,
    Input,
    Kill,
    Phase,
    ReloadFinished,
    ReloadPolicy,
    Spawn,
    StartBackoff,
    StopRequested,
    Strategy,
    Terminate,
    WorkerCrashed,
    WorkerExited,
    WorkerReady,
)
from devserve.process import SpawnLauncher, WorkerProcess
from devserve.regexcache import Pattern
from devserve.sockets import Listener
from devserve.watch import ChangeBatch

Reporter = Callable[[Event], None]
_PR_SET_CHILD_SUBREAPER = 36


class Launcher(Protocol):
    """Starts worker generations (spawn, or fork from a preloaded server)."""

    @property
    def strategy(self) -> str:
        """How workers start ("fork" or "spawn"), for reload lines."""
        ...

    async def launch(self, handoff: Handoff, pass_fds: list[int]) -> WorkerProcess:
        """Start one worker."""
        ...

    def preload(self, names: list[str], patterns: list[Pattern]) -> None:
        """Learn which third-party modules and regular expressions the app uses."""
        ...

    def prepare_next(self) -> None:
        """A reload finished: get ready for the next one."""
        ...

    async def close(self) -> None:
        """Release what the launcher holds."""
        ...


class Supervisor:
    """Run worker generations until stopped.

    Args:
        config: validated configuration (``reload`` set).
        listeners: sockets bound by the caller, kept open for the supervisor's life.
        changes: batches of changed paths (the watcher; tests pass a script).
        report: where worker events and supervisor messages go.
        launcher: how workers start (default: spawn a fresh interpreter).
        tls: (certfile, keyfile) for workers to serve, or None.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        config: Config,
        listeners: list[Listener],
        *,
        changes: AsyncIterator[ChangeBatch],
        report: Reporter,
        launcher: Launcher | None = None,
        tls: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.listeners = listeners
        self.changes = changes
        self.report = report
        self.tls = tls
        self.clock = clock
        read_fd, write_fd = os.pipe()
        os.set_inheritable(read_fd, True)
        self._parent_read, self._parent_write = read_fd, write_fd
        self.project_dirs = tuple(
            str(Path(d).resolve()) for d in (config.reload_dirs or (config.app_dir,))
        )
        self.launcher: Launcher = launcher or self._default_launcher()
        self.policy = ReloadPolicy(strategy=Strategy(config.reload_strategy))
        self.workers: dict[int, WorkerProcess] = {}
        self.broken: set[int] = set()
        self.terminated_early: set[int] = set()
        self.finished = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def _default_launcher(self) -> Launcher:
        if not self.config.reload_preload or not hasattr(os, "fork"):
            return SpawnLauncher()
        return ForkServerLauncher(
            inherit_fds=[
                *(listener.sock.fileno() for listener in self.listeners),
                self._parent_read,
            ],
            parent_fd=self._parent_read,
            project_dirs=self.project_dirs,
            report=self.report,
        )

    async def run(self) -> int:
        """Serve until stopped; return the exit code."""
        loop = asyncio.get_running_loop()
        become_subreaper()
        if isinstance(self.launcher, ForkServerLauncher):
            await self.launcher.start()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.feed, StopRequested())
        loop.add_signal_handler(signal.SIGHUP, self.reload_now)
        self._spawn_task(self._watch())
        try:
            self.execute(self.policy.start(self.clock()))
            await self.finished.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            for task in list(self._tasks):
                task.cancel()
            for worker in self.workers.values():
                worker.kill()
            await self.launcher.close()
            with contextlib.suppress(OSError):
                os.close(self._parent_write)
            with contextlib.suppress(OSError):
                os.close(self._parent_read)
        return 0

    def reload_now(self) -> None:
        """Reload without a file change (SIGHUP, the `r` key)."""
        self.feed(FilesChanged((), self.clock()))

    def feed(self, event: Input) -> None:
        """Give the policy one input and carry out its answer."""
        if self.policy.phase is Phase.DONE:
            return
        self.execute(self.policy.apply(event))

    def execute(self, actions: list[Action]) -> None:
        """Carry out the policy's actions."""
        for action in actions:
            match action:
                case Spawn(generation):
                    self._spawn_task(self._start(generation))
                case Terminate(generation):
                    self._terminate(generation)
                case Kill(generation):
                    if generation in self.workers:
                        self.workers[generation].kill()
                case StartBackoff(delay_s, token):
                    asyncio.get_running_loop().call_later(delay_s, self.feed, BackoffElapsed(token))
                case ReloadFinished():
                    self._report_action(action)
                    self.launcher.prepare_next()
                case WorkerCrashed():
                    self._report_action(action)
                case Finished():
                    self.finished.set()

    # -- workers ----------------------------------------------------------------------------

    async def _start(self, generation: int) -> None:
        read_fd, write_fd = os.pipe()
        listen_fds = [listener.sock.fileno() for listener in self.listeners]
        handoff = Handoff(
            config_json=self.config.to_json(),
            listen_fds=tuple(listen_fds),
            urls=tuple(listener.url for listener in self.listeners),
            events_fd=write_fd,
            parent_fd=self._parent_read,
            generation=generation,
            project_dirs=self.project_dirs,
            tls=self.tls,
        )
        EventReceiver(
            read_fd,
            on_event=lambda event: self._on_worker_event(generation, event),
            on_close=lambda: None,
        )
        try:
            worker = await self.launcher.launch(handoff, [*listen_fds, write_fd, self._parent_read])
        except OSError as exc:
            os.close(write_fd)
            self.report(LogLine("error", f"could not start a worker: {exc}"))
            self.feed(WorkerExited(generation, -1))
            return
        os.close(write_fd)
        self.workers[generation] = worker
        worker.exited.add_done_callback(lambda f: self._on_exit(generation, f))
        if generation in self.terminated_early:
            worker.terminate(self.config.graceful_s)

    def _terminate(self, generation: int) -> None:
        worker = self.workers.get(generation)
        if worker is None:
            self.terminated_early.add(generation)
            return
        worker.terminate(self.config.graceful_s)

    def _on_exit(self, generation: int, future: asyncio.Future[int]) -> None:
        worker = self.workers.pop(generation, None)
        if worker is not None:
            worker.forget_timer()
        self.broken.discard(generation)
        self.terminated_early.discard(generation)
        code = future.result() if not future.cancelled() else -1
        self.feed(WorkerExited(generation, code))

    def _on_worker_event(self, generation: int, event: Event) -> None:
        match event:
            case ServerStarted():
                is_broken = generation in self.broken
                if generation == 1 and not is_broken:
                    self.report(event)
                self.feed(WorkerReady(generation, self.clock(), is_broken=is_broken))
            case StartupFailed():
                self.broken.add(generation)
                self.report(event)
            case ModulesLoaded(names, patterns):
                self.launcher.preload(list(names), list(patterns))
            case ServerStopping():
                if self.policy.phase is Phase.STOPPING:
                    self.report(event)
            case _:
                self.report(event)

    def _report_action(self, action: ReloadFinished | WorkerCrashed) -> None:
        strategy = self.launcher.strategy
        if isinstance(action, ReloadFinished):
            if action.generation == 1:
                return
            files = ", ".join(action.paths[:3]) + (" ..." if len(action.paths) > 3 else "")  # noqa: PLR2004
            cause = f" ({files})" if files else ""
            if action.is_broken:
                text = f"reload failed{cause}: serving the error until the next save"
                self.report(LogLine("warning", text))
            else:
                text = f"reloaded in {action.duration_ms:.0f} ms [{strategy}]{cause}"
                self.report(LogLine("info", text))
            return
        how = (
            f"killed by {_signal_name(-action.code)}"
            if action.code < 0
            else f"exit code {action.code}"
        )
        retry = (
            f"; restarting in {action.retry_in_s:.1f} s" if action.retry_in_s is not None else ""
        )
        self.report(
            LogLine("error", f"worker {action.generation} stopped unexpectedly ({how}){retry}")
        )

    # -- watching ---------------------------------------------------------------------------

    async def _watch(self) -> None:
        async for batch in self.changes:
            if batch.dependencies_changed and isinstance(self.launcher, ForkServerLauncher):
                self.report(LogLine("info", "dependencies changed: rebuilding the fork server"))
                await self.launcher.restart()
            self.feed(FilesChanged(batch.paths, self.clock()))

    def _spawn_task(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def become_subreaper() -> None:
    """Adopt orphaned descendants (Linux only).

    A worker outliving a rebuilt fork server stays ours to stop and to reap, instead of
    becoming a zombie of init.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
