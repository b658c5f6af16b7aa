"""Timestamps along devserve's reload path, for ``bench/reload_trace.py`` only.

Put this directory first on ``PYTHONPATH`` and set ``DEVSERVE_BENCH_TRACE`` to a file: every
Python process then imports this module at start-up and, if that variable is set, wraps a
few devserve functions (and watchfiles' Rust watcher) so that each step of a reload appends
one line ``<time.monotonic_ns()> <pid> <label> <detail>`` to the file. ``CLOCK_MONOTONIC``
is one clock for every process on the machine, so the lines of the supervisor, the fork
server and the workers can be merged. Without the variable nothing is patched.
"""

from __future__ import annotations

import functools
import inspect
import os
import resource
import time
from typing import Any

_PATH = os.environ.get("DEVSERVE_BENCH_TRACE")
_PROFILE_DIR = os.environ.get("DEVSERVE_BENCH_PROFILE")
_FIRST_CONNECTIONS = 4
_setup_profiler: list[Any] = []


def _profiler() -> Any:
    """A running cProfile profiler when ``DEVSERVE_BENCH_PROFILE`` names a directory."""
    if _PROFILE_DIR is None:
        return None
    import cProfile  # noqa: PLC0415

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def mark(label: str, detail: object = "") -> None:
    """Append one trace line (one ``write`` on an O_APPEND descriptor: lines never mix)."""
    if _PATH is None:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage.ru_utime + usage.ru_stime) * 1000
    faults = usage.ru_minflt
    line = f"{time.monotonic_ns()} {os.getpid()} {label} {detail} cpu={cpu:.1f} flt={faults}\n"
    line = line.encode()
    fd = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _wrap(owner: Any, name: str, before: str | None, after: str | None) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before:
            mark(before)
        result = original(*args, **kwargs)
        if after:
            mark(after)
        return result

    setattr(owner, name, wrapper)


def _wrap_async(owner: Any, name: str, before: str | None, after: str | None) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before:
            mark(before)
        result = await original(*args, **kwargs)
        if after:
            mark(after)
        return result

    setattr(owner, name, wrapper)


def _traced_app(app: Any) -> Any:
    """`app`, marking its first HTTP call; an app object keeps its type (warm-up checks it)."""
    calls = [0]
    is_object = not inspect.isfunction(app) and not isinstance(app, type)
    inner = type(app).__call__ if is_object else app

    async def traced(*args: Any) -> None:
        scope = args[-3]
        first = scope["type"] == "http" and calls[0] == 0
        profiler = None
        if first:
            calls[0] += 1
            mark("app_first_call", f"cpu={time.process_time() * 1000:.1f}")
            profiler = _profiler()
        await inner(*args)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{_PROFILE_DIR}/first-{os.getpid()}.prof")
        if first:
            mark("app_first_return", f"cpu={time.process_time() * 1000:.1f}")

    if not is_object:
        return traced
    type(app).__call__ = traced
    return app


def _install() -> None:  # noqa: C901, PLR0915 - one place lists every hook
    import watchfiles.main  # noqa: PLC0415

    from devserve import (  # noqa: PLC0415
        forklauncher,
        handoff,
        ipc,
        lifespan,
        server,
        spare,
        supervisor,
        watch,
        worker,
        workerproc,
    )
    from devserve.events import ServerStarted  # noqa: PLC0415
    from devserve.policy import FilesChanged  # noqa: PLC0415

    rust = watchfiles.main.RustNotify

    class TracedRustNotify:
        """Wraps the Rust watcher (its type cannot be subclassed)."""

        def __init__(self, *args: Any) -> None:
            self._inner = rust(*args)

        def __enter__(self) -> TracedRustNotify:
            self._inner.__enter__()
            return self

        def __exit__(self, *exc: object) -> None:
            self._inner.__exit__(*exc)

        def close(self) -> None:
            self._inner.close()

        def watch(self, *args: Any) -> Any:
            result = self._inner.watch(*args)
            if isinstance(result, set):
                mark("rust_return", len(result))
            return result

    watchfiles.main.RustNotify = TracedRustNotify

    from devserve import inotify  # noqa: PLC0415

    read = inotify.Inotify.read

    def traced_read(self: Any) -> Any:
        events = read(self)
        if events:
            mark("inotify_read", len(events))
        return events

    inotify.Inotify.read = traced_read
    next_raw = watch._WatchLoop.next_raw

    async def traced_next_raw(self: Any, stop_event: Any, **kwargs: Any) -> Any:
        raw = await next_raw(self, stop_event, **kwargs)
        if raw:
            mark("raw_in_loop", len(raw))
        return raw

    watch._WatchLoop.next_raw = traced_next_raw
    _wrap_async(watch._WatchLoop, "handle", None, "batch_made")

    feed = supervisor.Supervisor.feed

    def traced_feed(self: Any, event: Any) -> None:
        if isinstance(event, FilesChanged):
            mark("policy_fed")
        feed(self, event)

    supervisor.Supervisor.feed = traced_feed
    _wrap_async(forklauncher.ForkServerLauncher, "launch", "fork_asked", "fork_answered")
    on_event = supervisor.Supervisor._on_worker_event

    def traced_on_event(self: Any, generation: int, event: Any) -> None:
        if isinstance(event, ServerStarted):
            mark("ready_received", generation)
        on_event(self, generation, event)
        if isinstance(event, ServerStarted):
            mark("swap_done", generation)

    supervisor.Supervisor._on_worker_event = traced_on_event
    # The fork server runs as ``-m devserve.forkserver`` (``__main__``): patch what it
    # imports by name, before it does.
    from_json = handoff.Handoff.from_json.__func__

    def traced_from_json(cls: Any, text: str) -> Any:
        mark("handoff_decoded")
        return from_json(cls, text)

    handoff.Handoff.from_json = classmethod(traced_from_json)
    await_handoff = spare.await_handoff

    def traced_await(*args: Any) -> Any:
        got = await_handoff(*args)
        mark("spare_go", got.generation if got is not None else "-")
        return got

    spare.await_handoff = traced_await
    run_worker = workerproc.run

    def traced_run(given: Any, **kwargs: Any) -> Any:
        mark("worker_run", f"{given.generation} cpu={time.process_time() * 1000:.1f}")
        _setup_profiler[:] = [_profiler()]
        return run_worker(given, **kwargs)

    workerproc.run = traced_run
    _wrap(workerproc, "redirect_output", None, "output_redirected")
    _wrap(workerproc, "worker_dev_mode", None, "dev_mode_built")
    _wrap(workerproc, "prepare_import", "prepare_start", "prepare_end")
    _wrap(workerproc, "run_coroutine", "runner_called", None)
    _wrap_async(worker.Worker, "serve", "serve_started", None)
    _wrap(worker.Worker, "step_aside", None, "old_stepped_aside")
    load_app = worker.load_app

    def traced_load(*args: Any, **kwargs: Any) -> Any:
        mark("import_start", f"cpu={time.process_time() * 1000:.1f}")
        if _setup_profiler and _setup_profiler[0] is not None:
            _setup_profiler[0].disable()
            _setup_profiler[0].dump_stats(f"{_PROFILE_DIR}/setup-{os.getpid()}.prof")
        profiler = _profiler()
        app = load_app(*args, **kwargs)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{_PROFILE_DIR}/import-{os.getpid()}.prof")
        mark("import_end", f"cpu={time.process_time() * 1000:.1f}")
        return _traced_app(app)

    worker.load_app = traced_load
    _wrap_async(lifespan.Lifespan, "startup", "lifespan_start", "lifespan_end")
    sender_call = ipc.EventSender.__call__

    def traced_send(self: Any, event: Any) -> None:
        if isinstance(event, ServerStarted):
            mark("ready_sent", f"cpu={time.process_time() * 1000:.1f}")
        sender_call(self, event)

    ipc.EventSender.__call__ = traced_send
    made = server.HttpProtocol.connection_made
    seen = [0]

    def traced_made(self: Any, transport: Any) -> None:
        if seen[0] < _FIRST_CONNECTIONS:
            seen[0] += 1
            mark("connection_made", seen[0])
        made(self, transport)

    server.HttpProtocol.connection_made = traced_made


if _PATH is not None:
    _install()
