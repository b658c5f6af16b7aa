"""A worker process under the supervisor: ``python -m devserve.workerproc HANDOFF_JSON``.

The supervisor (or the fork server) hands over, by file descriptor: the listening
sockets, the write end of the event channel, and the read end of a *parent pipe* whose
write end only the supervisor holds. The worker then

1. arranges to die with its parent: ``PR_SET_PDEATHSIG`` on Linux, and on every POSIX
   system end-of-file on the parent pipe (the supervisor died, even by SIGKILL);
2. reads ``--env-file`` again, so edits to it apply to this generation;
3. serves the app, reporting events; once ready, reports the third-party modules it
   imported so the fork server can preload them for the next generation;
4. if the app cannot be imported, exits at import (``sys.exit``) or its lifespan startup
   fails, reports `StartupFailed` and serves the "could not start" page on every request
   instead (HTML, JSON or text, `devserve.devmode.DevMode.startup_app`), until replaced:
   clients get an explanation, never a refused connection;
5. if the handoff carries a `devserve.handoff.Crash` (an earlier generation died before it
   was ready, #7), never imports the app: it serves that crash the same way.

Dev mode (`devserve.devmode`) wraps the app in both cases; live reload is on when the
supervisor handed over its per-run token (and the notice file, `devserve.livenotice`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import importlib.util
import os
import secrets
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Container, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

# Single-process mode imports the next three on first use; a reload worker imports them
# here, so that the fork server holds them and forked workers do not import them per reload.
import devserve.livenotice
import devserve.pages
import devserve.tlssniff  # noqa: F401
from devserve import codecache
from devserve.config import Config
from devserve.devmode import DevMode, LiveReload, dev_mode, respond
from devserve.envfile import apply_env, load_env_file
from devserve.events import Event, ModulesLoaded, StartupFailed
from devserve.failures import crash_failure, exception_failure
from devserve.handoff import STEP_ASIDE_SIGNAL, Crash, Handoff
from devserve.ipc import EventSender
from devserve.regexcache import Pattern, cached_patterns, new_patterns
from devserve.sockets import Listener
from devserve.worker import Worker, loop_factory, run_coroutine

_PR_SET_PDEATHSIG = 1
#: A terminal's Ctrl+C reaches the whole process group; under the supervisor only its
#: SIGTERM stops a worker, so one Ctrl+C is one graceful stop.
RELOAD_STOP_SIGNALS = (signal.SIGTERM,)
EXIT_STARTUP_FAILURE = 3


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def split_modules(
    modules: dict[str, Any], project_dirs: Iterable[str], known: Container[str] = ()
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(names of the third-party modules, source files of the project modules) imported.

    Third-party: outside every project directory; the fork server preloads them. Project
    sources: the ``.py`` files of modules inside one, as ``__file__`` names them; the fork
    server compiles them (`devserve.codecache`). Names in `known` (the modules the worker
    started with: the fork server's preloads) are left out, so the scan resolves only the
    paths of modules imported since.
    """
    roots = tuple(str(Path(d).resolve()) + os.sep for d in project_dirs)
    names, sources = [], []
    for name, module in list(modules.items()):
        if name in known:
            continue
        filename = getattr(module, "__file__", None)
        if not isinstance(filename, str) or name == "__main__" or name.startswith("devserve"):
            continue
        if not str(Path(filename).resolve()).startswith(roots):
            names.append(name)
        elif filename.endswith(".py"):
            sources.append(filename)
    return tuple(sorted(names)), tuple(sorted(sources))


#: Seconds after ready when the worker reports its modules: soon (out of the way of the swap
#: and the first requests, which the scan would delay), and again once frameworks imported
#: more on their first requests (response classes, encoders): the next worker should not.
EARLY_MODULES_REPORT_S = 0.1
LATE_MODULES_REPORT_S = 2.0


def report_modules(
    emit: Callable[[Event], None],
    project_dirs: Iterable[str],
    known: Container[str],
    known_patterns: Container[Pattern] = (),
) -> None:
    """Report third-party modules, project sources and compiled patterns soon, and again later.

    Called when the worker is ready; the second report comes after the first requests.
    Only what is new since the worker started (`known`, `known_patterns`) is reported, and
    each project source file once.
    """
    dirs = tuple(project_dirs)
    reported: set[str] = set()

    def report() -> None:
        names, sources = split_modules(sys.modules, dirs, known)
        patterns = new_patterns(known_patterns)
        sources = tuple(s for s in sources if s not in reported)
        reported.update(sources)
        if names or patterns or sources:
            emit(ModulesLoaded(names, patterns, sources))

    loop = asyncio.get_running_loop()
    loop.call_later(EARLY_MODULES_REPORT_S, report)
    loop.call_later(LATE_MODULES_REPORT_S, report)


def failure_event(stage: str, exc: BaseException, project_dirs: Iterable[str]) -> StartupFailed:
    """Describe a startup failure, pointing at the user's deepest frame."""
    roots = tuple(str(Path(d).resolve()) for d in project_dirs)
    filename: str | None = None
    lineno: int | None = None
    if isinstance(exc, SyntaxError) and exc.filename:
        filename, lineno = exc.filename, exc.lineno
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename.startswith(roots):
                filename, lineno = frame.filename, frame.lineno
    return StartupFailed(
        stage=stage,
        exc_type=type(exc).__qualname__,
        message=str(exc),
        traceback=user_traceback(exc),
        filename=filename,
        lineno=lineno,
    )


def user_traceback(exc: BaseException) -> str:
    """Format `exc` without the frames of devserve and the import machinery above the app."""
    summary = traceback.TracebackException.from_exception(exc)
    frames = list(summary.stack)
    while frames and _is_internal(frames[0].filename):
        frames.pop(0)
    summary.stack = traceback.StackSummary.from_list(frames)
    return "".join(summary.format())


_DEVSERVE_DIR = str(Path(__file__).resolve().parent)
_INTERNAL_MARKERS = ("<frozen ", "/asyncio/", "uvloop", "/importlib/")


def _is_internal(filename: str) -> bool:
    """Frames of the machinery between devserve and the user's module."""
    return filename.startswith(_DEVSERVE_DIR) or any(m in filename for m in _INTERNAL_MARKERS)


def error_app(failure: StartupFailed) -> Callable[..., Any]:
    """An ASGI app answering 503 with what is broken (HTML pages come from templates/)."""
    where = f" ({failure.filename}:{failure.lineno})" if failure.filename else ""
    body = (
        f"devserve: the application could not start ({failure.stage}){where}\n\n"
        f"{failure.traceback}\nFix the code and save: devserve reloads by itself.\n"
    ).encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011})
            return
        if scope["type"] == "http":
            await respond(send, 503, b"text/plain; charset=utf-8", body, [(b"retry-after", b"1")])

    return app


def crash_app(crash: Crash, dev: DevMode | None, changed: tuple[str, ...]) -> Callable[..., Any]:
    """The app of a crash page: `crash` on every request, in the usual page formats."""
    page = crash_failure(crash, changed=changed)
    if dev is not None:
        return dev.startup_app(page)
    output = "".join(f"{line}\n" for line in crash.output)
    failure = StartupFailed(
        stage=page.stage,
        exc_type=page.exc_type,
        message=page.message,
        traceback=f"{page.message}\n{page.traceback_text}{output}",
        filename=None,
        lineno=None,
    )
    return error_app(failure)


def worker_dev_mode(
    config: Config, handoff: Handoff, emit: Callable[[Event], None]
) -> DevMode | None:
    """Dev mode for this generation, with live reload when the supervisor gave a token."""
    live = None
    if handoff.livereload_token is not None:
        boot = f"{handoff.generation}-{secrets.token_hex(4)}"
        live = LiveReload(handoff.livereload_token, boot, handoff.notice_path)
    return dev_mode(
        config,
        emit,
        urls=handoff.urls,
        project_dirs=handoff.project_dirs,
        changed=handoff.changed,
        livereload=live,
    )


def breakpoint_without_terminal(*args: Any, **kwargs: Any) -> Any:
    """`breakpoint()` in a worker: say why pdb cannot stop here, and carry on.

    A worker's stdin is not the terminal (two generations can be alive during a swap, and
    the supervisor owns the keyboard), so pdb would read end-of-file at once and raise
    ``BdbQuit`` inside the request: a 500 with a puzzling traceback. A debugger chosen with
    ``PYTHONBREAKPOINT`` (debugpy, remote-pdb, web-pdb, or ``0`` to ignore) is used as usual.
    """
    if os.environ.get("PYTHONBREAKPOINT"):
        return sys.__breakpointhook__(*args, **kwargs)
    caller = sys._getframe(1)
    print(
        f"devserve: breakpoint() at {caller.f_code.co_filename}:{caller.f_lineno} skipped: "
        "--reload workers have no terminal for pdb; debug without --reload, "
        "or set PYTHONBREAKPOINT to a remote debugger",
        file=sys.stderr,
        flush=True,
    )
    return None


def redirect_output(output_fds: tuple[int, int] | None) -> None:
    """Move the supervisor's output pipes onto descriptors 1 and 2 (when it gave some).

    Either way Python's streams are switched to line buffering, so each line of ``print()``
    reaches the supervisor, or the pipe or IDE console the terminal output goes to, when it
    is written, not when a block buffer fills or the worker exits.
    """
    if output_fds is not None:
        for fd, target in zip(output_fds, (1, 2), strict=True):
            os.dup2(fd, target)
            os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def drop_saved_bytecode(changed: Iterable[str], project_dirs: Iterable[str]) -> None:
    """Delete the cached bytecode of the saved Python files, before the app is imported.

    Python trusts a ``.pyc`` whose recorded source mtime (in whole seconds) and size match
    the file's, so a save that keeps the size within the second of the last import (``v1``
    to ``v2``) would run the code from before it. `changed` holds paths relative to the
    project directory holding them (or absolute ones).
    """
    roots = tuple(project_dirs)
    for name in changed:
        if not name.endswith(".py"):
            continue
        for path in (name,) if os.path.isabs(name) else (os.path.join(r, name) for r in roots):
            with contextlib.suppress(OSError, ValueError, NotImplementedError):
                os.unlink(importlib.util.cache_from_source(path))


def prepare_import(config: Config, handoff: Handoff) -> None:
    """Before the app is imported: the env file's values now, and the right bytecode.

    Saved files lose their cached bytecode (`drop_saved_bytecode`); in a forked worker the
    others come compiled by the fork server (`devserve.codecache`).
    """
    if config.env_file is not None:
        apply_env(load_env_file(config.env_file))
    drop_saved_bytecode(handoff.changed, handoff.project_dirs)
    codecache.install()


def run(handoff: Handoff, *, started_at: float) -> int:
    """Serve one generation; return the exit code."""
    known_modules = frozenset(sys.modules)  # the fork server's preloads, or the bare stack
    known_patterns = frozenset(cached_patterns())
    redirect_output(handoff.output_fds)
    sys.breakpointhook = breakpoint_without_terminal
    # A notice signal before the loop's handler is installed must not kill the worker.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(STEP_ASIDE_SIGNAL, signal.SIG_IGN)  # nor may one before it serves
    config = Config.from_json(handoff.config_json)
    sender = EventSender(handoff.events_fd)
    emit: Callable[[Event], None] = sender
    dev = worker_dev_mode(config, handoff, emit)
    listeners = [
        Listener(socket.socket(fileno=fd), url, is_tls=handoff.is_tls_fd(fd))
        for fd, url in zip(handoff.listen_fds, handoff.urls, strict=True)
    ]
    ssl_context = None
    if handoff.tls is not None:
        from devserve.tls import make_server_ssl_context  # noqa: PLC0415 - TLS users only

        ssl_context = make_server_ssl_context(
            handoff.tls[0],
            handoff.tls[1],
            password=config.ssl_keyfile_password,
            ca_certs=config.ssl_ca_certs,
        )
    factory = loop_factory(config.loop)

    generation_worker = functools.partial(
        Worker,
        listeners=listeners,
        emit=emit,
        ssl_context=ssl_context,
        started_at=started_at,
        parent_fd=handoff.parent_fd,
        stop_signals=RELOAD_STOP_SIGNALS,
        step_aside_signal=STEP_ASIDE_SIGNAL,
        dev=dev,
    )

    def failure_worker(app: Callable[..., Any]) -> Worker:
        """A worker serving `app` (an error page) in place of the user's."""
        return generation_worker(replace(config, lifespan="off"), app=app)

    worker = generation_worker(
        config,
        on_ready=lambda: report_modules(emit, handoff.project_dirs, known_modules, known_patterns),
    )
    try:
        if handoff.crash is not None:  # a crash page: the app is never imported
            return run_coroutine(
                failure_worker(crash_app(handoff.crash, dev, handoff.changed)).serve(), factory
            )
        prepare_import(config, handoff)
        return run_coroutine(worker.serve(), factory)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the app boundary: report, serve the failure
        stage = "lifespan startup" if type(exc).__name__ == "StartupFailed" else "import"
        if isinstance(exc, SystemExit):
            stage = "exit"
        failure = failure_event(stage, exc, handoff.project_dirs)
        emit(failure)
        app = error_app(failure)
        if dev is not None:
            shown = getattr(exc, "error", None) or exc  # lifespan: the app's own exception
            page = exception_failure(
                shown, dev.classifier, status=503, stage=stage, changed=handoff.changed
            )
            app = dev.startup_app(page)
        run_coroutine(failure_worker(app).serve(), factory)
        return EXIT_STARTUP_FAILURE
    finally:
        sender.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of a spawned worker."""
    started_at = time.monotonic()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    args = sys.argv[1:] if argv is None else argv
    handoff = Handoff.from_json(args[0])
    sys.exit(run(handoff, started_at=started_at))


if __name__ == "__main__":
    main()
