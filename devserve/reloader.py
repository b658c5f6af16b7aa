"""``devserve APP --reload``: bind, watch, and run the supervisor until stopped.

The supervisor process never imports the app, h11, wsproto or uvloop: only the modules on
the supervisor side of the map (`tests/test_layers.py` checks the whole import closure).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from devserve.config import Config
from devserve.errors import CertificateError
from devserve.events import LogLine
from devserve.mounts import decide_polling
from devserve.reporting import Session, open_session
from devserve.sockets import bind_listeners, prepare_tls
from devserve.supervisor import Supervisor
from devserve.watch import ChangeBatch, WatchSettings, watch_changes

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
    dirs = tuple(Path(d).resolve() for d in (config.reload_dirs or (config.app_dir,)))
    extra = [dirs[0] / name for name in DEPENDENCY_FILES if (dirs[0] / name).is_file()]
    if config.env_file is not None:
        extra.append(Path(config.env_file).resolve())
    includes = ("*.py", *config.reload_includes)
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
    polling = decide_polling(settings)
    if polling.should_poll:
        report(LogLine("info", f"polling for changes: {polling.reason}"))
    async for batch in watch_changes(settings, stop_event=stop, polling=polling):
        yield batch


def run_reload(config: Config, environ: Mapping[str, str]) -> int:
    """Run the supervisor for `config`; return the exit code."""
    reporter = open_session(config, environ, is_batched=True)
    try:
        tls = prepare_tls(config, reporter)  # once: workers only load the files
    except CertificateError as exc:
        print(f"devserve: error: {exc}", file=sys.stderr)
        return EXIT_RUNTIME_FAILURE
    listeners = bind_listeners(config, is_tls=tls is not None)
    settings = watch_settings(config)

    async def main() -> int:
        stop = asyncio.Event()
        supervisor = Supervisor(
            config,
            listeners,
            changes=_batches(settings, stop, reporter),
            report=reporter,
            tls=tls,
            capture_output=reporter.captures_output,
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
