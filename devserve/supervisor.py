"""``--reload``: hold the sockets, watch the files, swap worker generations.

The supervisor binds the listening sockets once and keeps them open for its whole life,
so a client never sees a refused connection during a reload: connections wait in the
backlog or are accepted by whichever worker is up. It never imports the user's app.

It is a thin shell around `devserve.policy.ReloadPolicy`: inputs come from the watcher
(`FilesChanged`), from workers' event channels (`WorkerReady` when one reports
`ServerStarted`), from process exits (`WorkerExited`), from signals (`StopRequested`;
SIGHUP reloads) and from backoff timers; the policy answers with actions the supervisor
carries out. Worker events (requests, errors) go to the reporter, and so do the
supervisor-local lifecycle facts (`devserve.events.WorkerStarted`, ``WorkerReady``,
``WorkerDraining``, ``WorkerExited``, ``ChangeDetected``, ``ReloadFinished``), so every
output mode and the statistics see the same events. With ``capture_output`` each worker's
stdout and stderr come back through pipes as ``AppOutput`` events (`devserve.outputpipe`).

A worker that dies before it is ready with no good code serving gets a *crash page* in its
place (`devserve.policy.SpawnCrashPage`): an error-only generation, marked broken, that
never imports the app and shows the exit code or signal and the last output lines
(`devserve.crashes`) until the next save.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator, Callable

from devserve import events as ev
from devserve.config import Config
from devserve.crashes import OutputTails, exit_event, wait_drained
from devserve.earlyfork import parent_death_pipe
from devserve.events import (
    Event,
    LogLine,
    ModulesLoaded,
    ServerStarted,
    ServerStopping,
    StartupFailed,
)
from devserve.forklauncher import ForkServerLauncher, default_launcher
from devserve.handoff import STEP_ASIDE_SIGNAL, Crash, Handoff
from devserve.ipc import EventReceiver
from devserve.livenotice import BrowserNotices
from devserve.outputpipe import OutputPipes
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
    SpawnCrashPage,
    StartBackoff,
    StopRequested,
    Strategy,
    Terminate,
    WorkerCrashed,
    WorkerExited,
    WorkerReady,
)
from devserve.process import UNKNOWN_EXIT, Launcher, WorkerProcess, become_subreaper
from devserve.sockets import Listener
from devserve.watch import ChangeBatch

Reporter = Callable[[Event], None]
#: Longest wait, after a worker exited, for the end of its event and output pipes.
EXIT_DRAIN_S = 0.5
_BROKEN_AT_START = "the app could not start: requests get the error until a save fixes it"


class Supervisor:
    """Run worker generations until stopped.

    Args:
        config: validated configuration (``reload`` set).
        listeners: sockets bound by the caller, kept open for the supervisor's life.
        changes: batches of changed paths (the watcher; tests pass a script).
        report: where worker events and supervisor messages go.
        launcher: how workers start (default: spawn a fresh interpreter).
        tls: (certfile, keyfile) for workers to serve, or None.
        parent_pipe: the (read, write) ends of the pipe whose closing tells workers and the
            fork server that the supervisor is gone; made here unless the caller started a
            launcher that already holds it (the read end must be inheritable).
        clock: monotonic seconds.
        capture_output: read workers' stdout/stderr through pipes and report each line as
            an ``AppOutput`` event (else they write to the inherited terminal).
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
        capture_output: bool = False,
        parent_pipe: tuple[int, int] | None = None,
    ) -> None:
        self.config = config
        self._config_json = config.to_json()  # frozen: encoded once, not on every reload
        self.capture_output = capture_output
        self.listeners = listeners
        self.changes = changes
        self.report = report
        self.tls = tls
        self.clock = clock
        self._parent_read, self._parent_write = parent_pipe or parent_death_pipe()
        self.project_dirs = config.project_dirs
        self.launcher: Launcher = launcher or self._default_launcher()
        self.policy = ReloadPolicy(strategy=Strategy(config.reload_strategy))
        self.workers: dict[int, WorkerProcess] = {}
        self.broken: set[int] = set()
        self.is_announced = False  # the "serving on URL" line went out
        self.terminated_early: set[int] = set()
        self.tails = OutputTails(is_read=capture_output)
        self.finished = asyncio.Event()
        self._early: dict[int, list[Event]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.browsers = BrowserNotices.for_config(config, self.workers, report)  # live reload
        self.report = self.browsers.observing(report)

    def _default_launcher(self) -> Launcher:
        return default_launcher(
            self.config,
            self.listeners,
            self._parent_read,
            report=self.report,
            capture_output=self.capture_output,
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
            self.browsers.close()
        return 0

    def reload_now(self) -> None:
        """Reload without a file change (SIGHUP, the `r` key)."""
        if self.policy.phase is not Phase.DONE:
            self.report(ev.ChangeDetected(()))
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
                case SpawnCrashPage(generation):
                    self.broken.add(generation)  # it serves an error, like a failed import
                    self._spawn_task(self._start(generation, self.tails.crash_for(action)))
                case Terminate(generation):
                    self._terminate(generation)
                case Kill(generation):
                    if generation in self.workers:
                        self.workers[generation].kill()
                case StartBackoff(delay_s, token):
                    asyncio.get_running_loop().call_later(delay_s, self.feed, BackoffElapsed(token))
                case ReloadFinished():
                    self._report_reload(action)
                    self.launcher.prepare_next()
                case WorkerCrashed():
                    pass  # reported with the exit, as a WorkerExited event
                case Finished():
                    self.finished.set()

    # -- workers ----------------------------------------------------------------------------

    async def _start(self, generation: int, crash: Crash | None = None) -> None:
        if crash is None:  # a new version: the serving workers make way for it
            for worker in self.workers.values():
                if worker.generation in self.browsers.ready:  # its signal handlers are set
                    worker.send_signal(STEP_ASIDE_SIGNAL)
        read_fd, write_fd = os.pipe()
        listen_fds = [listener.sock.fileno() for listener in self.listeners]
        handoff = Handoff(
            config_json=self._config_json,
            listen_fds=tuple(listen_fds),
            urls=tuple(listener.url for listener in self.listeners),
            events_fd=write_fd,
            parent_fd=self._parent_read,
            generation=generation,
            project_dirs=self.project_dirs,
            tls=self.tls,
            crash=crash,
            **self.browsers.handoff_fields(),
        )
        pipes = None
        if self.capture_output:
            pipes = OutputPipes(generation, self.tails.observing(generation, self.report))
        if pipes is not None:
            handoff = dataclasses.replace(handoff, output_fds=pipes.write_fds)
        channel_closed = asyncio.Event()
        EventReceiver(
            read_fd,
            on_event=lambda event: self._on_worker_event(generation, event),
            on_close=channel_closed.set,
        )
        drained = [channel_closed] if pipes is None else [channel_closed, pipes.closed]
        pass_fds = [*listen_fds, write_fd, self._parent_read, *(handoff.output_fds or ())]
        self._early[generation] = []  # until it is known to have started (see WorkerStarted)
        try:
            worker = await self.launcher.launch(handoff, pass_fds)
        except OSError as exc:
            os.close(write_fd)
            if pipes is not None:
                pipes.close()
            self._early.pop(generation, None)
            self.report(LogLine("error", f"could not start a worker: {exc}"))
            self._exited(generation, -1, UNKNOWN_EXIT)  # no pid either
            return
        os.close(write_fd)
        if pipes is not None:
            pipes.start()
        self.workers[generation] = worker
        self.report(ev.WorkerStarted(generation, worker.pid, worker.strategy))
        for event in self._early.pop(generation, []):
            self._on_worker_event(generation, event)
        worker.exited.add_done_callback(lambda f: self._on_exit(generation, worker.pid, f, drained))
        if generation in self.terminated_early:
            self.terminated_early.discard(generation)
            self._terminate(generation)  # superseded (or stopped) while it was starting

    def _terminate(self, generation: int) -> None:
        worker = self.workers.get(generation)
        if worker is None:
            self.terminated_early.add(generation)
            return
        reason = "stop" if self.policy.phase in {Phase.STOPPING, Phase.DONE} else "reload"
        self.report(ev.WorkerDraining(generation, worker.pid, reason))
        worker.terminate(self.config.graceful_s)

    def _on_exit(
        self, generation: int, pid: int, future: asyncio.Future[int], drained: list[asyncio.Event]
    ) -> None:
        worker = self.workers.pop(generation, None)
        if worker is not None:
            worker.forget_timer()
        self.broken.discard(generation)
        self.terminated_early.discard(generation)
        code = future.result() if not future.cancelled() else UNKNOWN_EXIT
        self._spawn_task(self._after_exit(generation, pid, code, drained))

    async def _after_exit(
        self, generation: int, pid: int, code: int, drained: list[asyncio.Event]
    ) -> None:
        """Read what the worker sent before it died, then act on its exit.

        Its last events (requests finished while draining, the error it crashed on) and
        output lines may still be in the pipes when the exit is noticed; they count, and
        must come before the exit. The wait is bounded: a child the app forked may hold
        the pipes open.
        """
        await wait_drained(drained, EXIT_DRAIN_S)
        self._exited(generation, pid, code)

    def _exited(self, generation: int, pid: int, code: int) -> None:
        """Tell the policy; report the exit, as a crash when the policy says it was one."""
        if self.policy.phase is Phase.DONE:
            return
        actions = self.policy.apply(WorkerExited(generation, code))
        crash = next((a for a in actions if isinstance(a, WorkerCrashed)), None)
        self.report(exit_event(generation, pid, code, crash))
        self.execute(actions)  # a crash page reads this generation's last output lines
        self.tails.forget(generation)

    def _on_worker_event(self, generation: int, event: Event) -> None:
        early = self._early.get(generation)
        if early is not None:  # a fast worker spoke before its launch returned: keep order
            early.append(event)
            return
        match event:
            case ServerStarted():
                is_broken = generation in self.broken
                if not self.is_announced:  # once, even for broken code: it serves its error
                    self.is_announced = True
                    self.report(event)
                    if is_broken:
                        self.report(LogLine("warning", _BROKEN_AT_START))
                self.report(ev.WorkerReady(generation, event.pid, event.startup_ms, is_broken))
                self.feed(WorkerReady(generation, self.clock(), is_broken=is_broken))
            case StartupFailed():
                self.broken.add(generation)
                self.report(event)
            case ModulesLoaded(names, patterns, sources):
                self.launcher.preload(list(names), list(patterns), list(sources))
            case ServerStopping():
                if self.policy.phase is Phase.STOPPING:
                    self.report(event)
            case _:
                self.report(event)

    def _report_reload(self, action: ReloadFinished) -> None:
        if action.is_first:
            return  # the first start is no reload: WorkerReady says it is up
        self.report(
            ev.ReloadFinished(
                generation=action.generation,
                duration_ms=action.duration_ms,
                files=action.paths,
                strategy=self.policy.strategy.value,
                start_method=self.launcher.strategy,
                ok=not action.is_broken,
            )
        )

    # -- watching ---------------------------------------------------------------------------

    async def _watch(self) -> None:
        async for batch in self.changes:
            if batch.dependencies_changed and isinstance(self.launcher, ForkServerLauncher):
                self.report(LogLine("info", "dependencies changed: rebuilding the fork server"))
                await self.launcher.restart()
            elif self.browsers.saved(batch.paths):  # only files read at request time
                continue
            if self.policy.phase is not Phase.DONE:
                self.report(ev.ChangeDetected(tuple(batch.paths)))
            self.feed(FilesChanged(batch.paths, self.clock()))

    def _spawn_task(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
