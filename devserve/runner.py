"""Single-process mode: bind, serve in this process, map failures to exit codes.

This is what ``devserve APP`` (without ``--reload``) runs, and what an IDE debugger attaches
to: the app runs in this very process.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import sys
import time
import traceback
from collections.abc import Mapping

from devserve.config import Config
from devserve.devmode import dev_mode
from devserve.envfile import apply_env, load_env_file
from devserve.errors import AppLoadError, CertificateError
from devserve.lifespan import StartupFailed
from devserve.reporting import Session, captured_output, open_session
from devserve.sockets import bind_listeners, prepare_tls
from devserve.worker import Worker, loop_factory, run_coroutine

EXIT_RUNTIME_FAILURE = 1
EXIT_STARTUP_FAILURE = 3
EXIT_INTERRUPTED = 130


def make_ssl_context(config: Config, report: Session) -> ssl.SSLContext | None:
    """The server TLS context for ``--ssl-certfile``/``--ssl-keyfile`` or ``--https``, or None.

    With ``--https`` the local CA and leaf are created or reused first (see
    `devserve.sockets.prepare_tls`), and what the user needs to know is reported.

    Raises:
        CertificateError: a file is unreadable or the key does not match.
    """
    files = prepare_tls(config, report)
    if files is None:
        return None
    from devserve.tls import make_server_ssl_context  # noqa: PLC0415 - TLS users only

    return make_server_ssl_context(
        files[0],
        files[1],
        password=config.ssl_keyfile_password,
        ca_certs=config.ssl_ca_certs,
    )


def run_single(config: Config, environ: Mapping[str, str]) -> int:
    """Serve `config` in this process until stopped; return the exit code."""
    started_at = time.monotonic()
    # The app shares this loop: lines are written as they come, never held for a batch.
    reporter = open_session(config, environ, is_batched=False)
    if config.env_file is not None:
        apply_env(load_env_file(config.env_file))
    try:
        ssl_context = make_ssl_context(config, reporter)
    except CertificateError as exc:
        _say(str(exc))
        return EXIT_RUNTIME_FAILURE
    listeners = bind_listeners(config, is_tls=ssl_context is not None)
    dev = dev_mode(config, reporter, urls=tuple(listener.url for listener in listeners))
    worker = Worker(
        config, listeners, emit=reporter, ssl_context=ssl_context, started_at=started_at, dev=dev
    )
    capture = captured_output(reporter) if reporter.captures_output else contextlib.nullcontext()
    try:
        with capture:
            return run_coroutine(worker.serve(), loop_factory(config.loop))
    except AppLoadError as exc:
        _report_failure(reporter, "import", exc, config)
        _say(str(exc))
        return EXIT_STARTUP_FAILURE
    except StartupFailed as exc:
        _report_failure(reporter, "lifespan startup", exc, config)
        _say(f"application startup failed: {exc}")
        return EXIT_STARTUP_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the user's code raised while importing: show it
        _report_failure(reporter, "import", exc, config)
        traceback.print_exception(exc, file=sys.stderr)
        _say(f"error while importing {config.app}: {type(exc).__name__}: {exc}")
        return EXIT_STARTUP_FAILURE
    finally:
        reporter.close()
        for listener in listeners:
            listener.sock.close()
        if config.uds is not None:
            with contextlib.suppress(OSError):
                os.unlink(config.uds)


def _report_failure(reporter: Session, stage: str, exc: BaseException, config: Config) -> None:
    """Under ``--ui json`` a failed start is also a ``startup_failed`` object on stdout.

    Tools reading the JSON stream then learn why nothing is served without parsing stderr,
    which still gets the usual one line.
    """
    if reporter.mode == "json":
        from devserve.workerproc import failure_event  # noqa: PLC0415 - the --reload side's

        reporter(failure_event(stage, exc, (config.app_dir,)))


def _say(message: str) -> None:
    print(f"devserve: error: {message}", file=sys.stderr, flush=True)
