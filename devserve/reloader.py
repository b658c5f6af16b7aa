"""``devserve APP --reload``: bind, watch, and run the supervisor until stopped.

The supervisor process never imports the app, h11, wsproto or uvloop: only the modules on
the supervisor side of the map (`tests/test_layers.py` checks the whole import closure).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from devserve.config import Config
from devserve.earlyfork import (
    fork_server_fds,
    parent_death_pipe,
    spawn_fork_server,
    uses_fork_server,
)
from devserve.errors import CertificateError
from devserve.sockets import bind_listeners, prepare_tls
from devserve.uimode import resolve_for_terminal

if TYPE_CHECKING:
    import asyncio

    from devserve.reporting import Session
    from devserve.watch import ChangeBatch, WatchSettings

# Everything else (asyncio, the output, the supervisor, the watcher) is imported once the
# fork server is on its way (`run_reload`): the two interpreters then boot side by side.

EXIT_RUNTIME_FAILURE = 1
DEPENDENCY_FILES = (
    "pyproject.toml",
    "uv.lock",
    "poetry.lock",
    "pdm.lock",
    "Pipfile.lock",
    "requirements.txt",
    "requirements-dev.txt",
)


def watch_settings(config: Config) -> WatchSettings:
    """What to watch for `config`: the reload dirs, plus env and dependency files."""
    from devserve.livenotice import DEFAULT_GLOBS  # noqa: PLC0415 - see the imports
    from devserve.watch import WatchSettings  # noqa: PLC0415

    dirs = tuple(Path(d) for d in config.project_dirs)
    extra = [dirs[0] / name for name in DEPENDENCY_FILES if (dirs[0] / name).is_file()]
    if config.env_file is not None:
        extra.append(Path(config.env_file).resolve())
    includes = ("*.py", *config.reload_includes)
    if config.is_livereload:
        includes += (*DEFAULT_GLOBS, *config.livereload_includes)
    return WatchSettings(
        dirs=dirs,
        includes=includes,
        excludes=config.reload_excludes,
        delay_ms=round(config.reload_delay_s * 1000),
        force_polling=config.reload_polling,
        extra_files=tuple(extra),
    )


async def _batches(
    settings: WatchSettings, stop: asyncio.Event, report: Session
) -> AsyncIterator[ChangeBatch]:
    from devserve.events import LogLine  # noqa: PLC0415 - see the imports
    from devserve.mounts import decide_polling  # noqa: PLC0415
    from devserve.watch import watch_changes  # noqa: PLC0415

    polling = decide_polling(settings)
    if polling.should_poll:
        report(LogLine("info", f"polling for changes: {polling.reason}"))
    async for batch in watch_changes(settings, stop_event=stop, polling=polling):
        yield batch


def run_reload(config: Config, environ: Mapping[str, str]) -> int:
    """Run the supervisor for `config`; return the exit code."""
    listeners = bind_listeners(config, is_tls=config.is_tls)
    parent_pipe = parent_death_pipe()
    captures_output = resolve_for_terminal(config.ui, environ) != "plain"  # as the session's
    spawned = None
    if uses_fork_server(config):
        spawned = spawn_fork_server(
            inherit_fds=fork_server_fds(listeners, parent_pipe[0]),
            parent_fd=parent_pipe[0],
            project_dirs=config.project_dirs,
            stdout_to_stderr=captures_output,
        )
    import asyncio  # noqa: PLC0415 - see the imports

    from devserve.forklauncher import default_launcher  # noqa: PLC0415
    from devserve.reporting import open_session  # noqa: PLC0415
    from devserve.supervisor import Supervisor  # noqa: PLC0415

    reporter = open_session(config, environ, is_batched=True)
    try:
        tls = prepare_tls(config, reporter)  # once: workers only load the files
    except CertificateError as exc:
        print(f"devserve: error: {exc}", file=sys.stderr)
        if spawned is not None:
            spawned.stop()
        for listener in listeners:
            listener.sock.close()
        return EXIT_RUNTIME_FAILURE
    launcher = default_launcher(
        config,
        listeners,
        parent_pipe[0],
        report=reporter,
        capture_output=reporter.captures_output,
        spawned=spawned,
    )

    settings = watch_settings(config)

    async def main() -> int:
        stop = asyncio.Event()
        supervisor = Supervisor(
            config,
            listeners,
            changes=_batches(settings, stop, reporter),
            report=reporter,
            launcher=launcher,
            tls=tls,
            capture_output=reporter.captures_output,
            parent_pipe=parent_pipe,
        )
        try:
            return await supervisor.run()
        finally:
            stop.set()

    try:
        return asyncio.run(main())
    finally:
        reporter.close()
        for listener in listeners:
            listener.sock.close()
