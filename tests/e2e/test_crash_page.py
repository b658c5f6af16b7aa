"""Crash pages under ``--reload`` (#7): a worker that dies before it is ready gets a page.

An app that ends its process at import (``os._exit``, a signal) cannot report anything;
with no good worker serving, requests used to wait in the backlog while the supervisor
restarted it again and again. Now an error-only worker answers with the exit code or the
signal until the next save, and the app is not imported again in between.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_devpages_cli import HELLO, TAG, _stream
from tests.e2e.test_reload import (
    MARKER,
    RELOAD_ARGS,
    app_source,
    assert_stays,
    fetch,
    imports,
    reload_server,
    wait_served,
    write,
)
from tests.e2e.test_ui_modes import json_server, of_type, wait_json
from tests.helpers import recv_until

#: Counts its imports (one line each in MARKER), says goodbye, then ends the process.
DYING = """
import os
import pathlib
import signal

with open(pathlib.Path(__file__).with_name("{marker}"), "a") as _log:
    _log.write("imported\\n")
print("about to die", flush=True)
{death}


async def app(scope, receive, send):
    pass
"""
#: Ready, then dies 0.2 s later, again and again (a crash loop of a worker that served).
CRASHING = "import os, threading\nthreading.Timer(0.2, os._exit, (7,)).start()"
HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


def dying(death: str) -> str:
    return DYING.format(marker=MARKER, death=death)


def answer_in_time(url: str, headers: dict[str, str], limit_s: float = 3.0) -> httpx.Response:
    """GET `url`: it must answer (not hang in the backlog) within `limit_s`."""
    started = time.monotonic()
    response = httpx.get(url, headers=headers, timeout=limit_s)
    assert time.monotonic() - started < limit_s
    return response


def test_exit_at_import_serves_the_crash_page_then_a_fix_reloads(tmp_path: Path) -> None:
    write(tmp_path / "main.py", dying("os._exit(3)"))
    with reload_server(tmp_path) as cli:  # "serving on URL": the crash page is up
        cli.wait_for(r"worker 1 stopped unexpectedly \(exit code 3\); serving the error")
        page = answer_in_time(cli.url, HTML)
        assert page.status_code == 503
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "exit code 3" in page.text and "the application crashed" in page.text
        # Live reload is on: the page carries the script, so a good save refreshes it.
        tag = TAG.search(page.content)
        assert tag is not None, page.text
        port = int(cli.url.rsplit(":", 1)[1].strip("/"))
        stream = _stream(port, tag.group(1).decode())
        document = answer_in_time(cli.url, JSON).json()
        assert document["type"] == "WorkerCrashed" and document["stage"] == "crash"
        assert "exit code 3" in document["error"]
        text = answer_in_time(cli.url, {})
        assert text.text.startswith("devserve: the application crashed: the worker process")
        with stream:
            hello = recv_until(stream, lambda d: HELLO.search(d) is not None)
            assert b'"broken": true' in hello
            write(tmp_path / "main.py", app_source("fixed"))
            # The crash page drains: its browsers reconnect to the new worker and reload.
            end = recv_until(stream, lambda d: b"event: bye" in d and d.endswith(b"0\r\n\r\n"))
            assert b"event: bye" in end
        wait_served(cli, 200, "fixed")
        cli.wait_for(r"reloaded in \d+ ms \[\w+\] \(main\.py\)")
        assert cli.proc.poll() is None
        assert imports(tmp_path) == 2  # the crash page never imported the app


@pytest.mark.parametrize("name", ["SIGKILL", "SIGSEGV"])
def test_signal_at_import_names_the_signal(tmp_path: Path, name: str) -> None:
    write(tmp_path / "main.py", dying(f"os.kill(os.getpid(), signal.{name})"))
    with reload_server(tmp_path) as cli:
        cli.wait_for(rf"worker 1 stopped unexpectedly \(killed by {name}\); serving the error")
        page = answer_in_time(cli.url, HTML)
        assert page.status_code == 503
        assert f"killed by {name}" in page.text
        assert f"killed by {name}" in answer_in_time(cli.url, JSON).json()["error"]
        refused = answer_in_time(cli.url, {"Host": "evil.test", "Accept": "text/html"})
        assert refused.status_code == 403 and name not in refused.text  # the Host check holds
        assert cli.proc.poll() is None


def test_the_crashing_app_is_not_restarted_until_a_save(tmp_path: Path) -> None:
    write(tmp_path / "main.py", dying("os._exit(3)"))
    with reload_server(tmp_path) as cli:
        assert answer_in_time(cli.url, {}).status_code == 503
        # Today's backoff would have retried 4-5 times in this window.
        assert_stays(lambda: imports(tmp_path) == 1, 1.5)
        assert sum("stopped unexpectedly" in line for line in list(cli.lines)) == 1
        write(tmp_path / "main.py", dying("os._exit(4)"))  # a save tries once more
        cli.wait_for(r"worker \d+ stopped unexpectedly \(exit code 4\); serving the error")
        wait_served(cli, 503, "exit code 4")
        assert_stays(lambda: imports(tmp_path) == 2, 1.0)


def test_crash_with_a_good_worker_serving_keeps_the_old_code(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    with reload_server(tmp_path) as cli:
        write(tmp_path / "main.py", dying("os._exit(3)"))
        cli.wait_for(r"worker 2 stopped unexpectedly \(exit code 3\)$")
        assert fetch(cli.url) == (200, "v1")


def test_restart_strategy_crash_after_the_old_worker_stopped_serves_the_page(
    tmp_path: Path,
) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    with reload_server(tmp_path, "--reload-strategy", "restart") as cli:
        write(tmp_path / "main.py", dying("os._exit(3)"))
        wait_served(cli, 503, "exit code 3")
        cli.wait_for(r"reload failed \(main\.py\): serving the error until the next save")
        write(tmp_path / "main.py", app_source("v2"))
        wait_served(cli, 200, "v2")


def test_no_debug_pages_gives_a_plain_crash_body(tmp_path: Path) -> None:
    write(tmp_path / "main.py", dying("os._exit(3)"))
    with reload_server(tmp_path, "--no-debug-pages") as cli:
        page = answer_in_time(cli.url, HTML)
        assert page.status_code == 503
        assert page.headers["content-type"] == "text/plain; charset=utf-8"
        assert page.text.startswith("devserve: the application crashed; see the terminal.")


def test_a_serving_worker_in_a_crash_loop_gets_a_stand_in_during_long_backoffs(
    tmp_path: Path,
) -> None:
    write(tmp_path / "main.py", app_source("v1", prelude=CRASHING))
    with reload_server(tmp_path) as cli:
        # Backoffs double from 0.1 s; from 0.8 s on a crash page answers while they run.
        cli.wait_for(r"stopped unexpectedly \(exit code 7\); restarting in 1\.6 s", timeout_s=10)
        wait_served(cli, 503, "restarts the application in", timeout_s=4)
        write(tmp_path / "main.py", app_source("v2"))
        wait_served(cli, 200, "v2")


def test_with_captured_output_the_page_shows_what_the_worker_last_wrote(tmp_path: Path) -> None:
    write(tmp_path / "main.py", dying("os._exit(3)"))
    with json_server(tmp_path, *RELOAD_ARGS) as cli:
        wait_json(cli, "worker_exited")
        [exited] = of_type(cli, "worker_exited")
        assert (exited["code"], exited["has_crash_page"], exited["retry_in_s"]) == (3, True, None)
        page = answer_in_time(cli.url, HTML)
        assert page.status_code == 503
        assert "Last output of the worker" in page.text and "about to die" in page.text
        assert answer_in_time(cli.url, JSON).json()["output"] == ["about to die"]
