"""Crash pages (#7) without processes: the handoff, the page, the supervisor's helpers."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import pytest

from devserve.accesslog import lifecycle_text
from devserve.config import Config
from devserve.crashes import TAIL_LINES, OutputTails, exit_event, wait_drained
from devserve.devmode import LiveReload, dev_mode
from devserve.events import AppOutput, Event, LogLine, WorkerExited, WorkerReady
from devserve.failures import crash_failure
from devserve.handoff import Crash, Handoff
from devserve.livenotice import BrowserNotices, read_notices
from devserve.pages import render_failure
from devserve.policy import SpawnCrashPage, WorkerCrashed
from devserve.process import UNKNOWN_EXIT
from devserve.workerproc import crash_app

EXITED = Crash(generation=1, code=3, signal=None, output=("about to <die>",), is_output_read=True)
KILLED = Crash(generation=4, code=None, signal="SIGSEGV")


def test_handoff_carries_the_crash_through_json() -> None:
    handoff = Handoff("{}", (3,), ("http://127.0.0.1:1",), 4, 5, 2, ("/p",), crash=EXITED)
    assert Handoff.from_json(handoff.to_json()) == handoff
    plain = Handoff("{}", (3,), ("http://127.0.0.1:1",), 4, 5, 2, ("/p",))
    assert Handoff.from_json(plain.to_json()).crash is None
    assert EXITED.how == "exit code 3" and KILLED.how == "killed by SIGSEGV"


def test_the_page_names_the_exit_code_and_shows_the_last_output_escaped() -> None:
    failure = crash_failure(EXITED, changed=("main.py",))
    assert (failure.status, failure.stage, failure.exc_type) == (503, "crash", "WorkerCrashed")
    page = render_failure(failure, "html", script="<script>live</script>")[1].decode()
    assert "503 &middot; the application crashed" in page
    assert "ended with exit code 3 before it was ready" in page
    assert "Last output of the worker" in page and "about to &lt;die&gt;" in page
    assert "<code>main.py</code>" in page and "Fix the code and save." in page
    assert "(no frames)" not in page and "No Python traceback" in page
    assert page.rstrip().endswith("<script>live</script>\n</body>\n</html>")
    document = json.loads(render_failure(failure, "json")[1])
    assert document["type"] == "WorkerCrashed" and "exit code 3" in document["error"]
    assert document["output"] == ["about to <die>"] and document["stage"] == "crash"
    text = render_failure(failure, "text")[1].decode()
    assert text.startswith("devserve: the application crashed: the worker process ended with")
    assert "Last output of the worker:\nabout to <die>\n" in text


def test_the_page_says_where_output_went_and_names_a_signal() -> None:
    failure = crash_failure(KILLED)
    assert "was killed by SIGSEGV before it was ready" in failure.message
    assert "output went to the terminal" in failure.traceback_text
    quiet = crash_failure(Crash(1, 3, None, is_output_read=True))
    assert "it wrote nothing" in quiet.traceback_text


def test_a_stand_in_during_a_backoff_says_the_app_restarts() -> None:
    failure = crash_failure(Crash(2, 7, None, retry_in_s=1.6))
    assert "while serving" in failure.message
    page = render_failure(failure, "html")[1].decode()
    assert "restarts the application in 1.6 s" in page and "Fix the code and save." not in page
    text = render_failure(failure, "text")[1].decode()
    assert text.rstrip().endswith("a save restarts it at once.")


def _get(app: Any, accept: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
        "headers": [(b"host", b"localhost:8000"), (b"accept", accept)],
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 5))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], dict(sent[0]["headers"]), body


def test_crash_app_with_live_reload_carries_the_script() -> None:
    config = Config.from_options({"app": "main:app", "reload": True})
    dev = dev_mode(
        config, lambda _e: None, urls=("http://127.0.0.1:8000",), livereload=LiveReload("t", "2-x")
    )
    assert dev is not None
    status, headers, body = _get(dev.wrap(crash_app(EXITED, dev, ())), b"text/html")
    assert status == 503 and headers[b"retry-after"] == b"1"
    assert b"exit code 3" in body and b"/__devserve/livereload.js" in body
    assert dev.is_broken  # the live-reload hello says so


def test_crash_app_without_debug_pages_is_plain() -> None:
    config = Config.from_options({"app": "main:app", "debug_pages": False})
    dev = dev_mode(config, lambda _e: None, urls=("http://127.0.0.1:8000",))
    assert dev is not None  # the host check stays
    status, headers, body = _get(dev.wrap(crash_app(KILLED, dev, ())), b"text/html")
    assert status == 503 and headers[b"content-type"].startswith(b"text/plain")
    assert body.startswith(b"devserve: the application crashed; see the terminal.")


def test_crash_app_without_dev_mode_still_names_the_crash() -> None:
    status, headers, body = _get(crash_app(EXITED, None, ()), b"text/html")
    assert status == 503 and headers[b"content-type"].startswith(b"text/plain")
    assert b"exit code 3" in body and b"about to <die>" in body


def test_output_tails_keep_the_last_lines_per_generation() -> None:
    reported: list[Event] = []
    tails = OutputTails(is_read=True)
    report = tails.observing(3, reported.append)
    for number in range(TAIL_LINES + 5):
        report(AppOutput("stderr", f"line {number}", 3))
    report(LogLine("info", "not output"))
    assert len(reported) == TAIL_LINES + 6  # everything is passed on
    crash = tails.crash_for(SpawnCrashPage(4, crashed=3, code=-int(signal.SIGKILL)))
    assert (crash.generation, crash.code, crash.signal) == (3, None, "SIGKILL")
    assert crash.output == tuple(f"line {n}" for n in range(5, TAIL_LINES + 5))
    tails.forget(3)
    assert tails.crash_for(SpawnCrashPage(4, 3, 2, retry_in_s=0.8)) == Crash(
        3, 2, None, (), is_output_read=True, retry_in_s=0.8
    )


@pytest.mark.parametrize(
    ("crash", "expected"),
    [
        (None, "worker 2 exited (exit code 0)"),
        (
            WorkerCrashed(2, 3, None, has_crash_page=True),
            "worker 2 stopped unexpectedly (exit code 3); serving the error until the next save",
        ),
        (
            WorkerCrashed(2, 3, 0.4),
            "worker 2 stopped unexpectedly (exit code 3); restarting in 0.4 s",
        ),
    ],
)
def test_exit_events_and_their_lines(crash: WorkerCrashed | None, expected: str) -> None:
    code = 0 if crash is None else crash.code
    event = exit_event(2, 77, code, crash)
    assert lifecycle_text(event)[1] == expected
    killed = exit_event(2, 77, -int(signal.SIGSEGV), crash)
    assert (killed.code, killed.signal) == (None, "SIGSEGV")


def test_an_unreadable_exit_status_is_unknown_not_sighup() -> None:
    event = exit_event(2, 77, UNKNOWN_EXIT, WorkerCrashed(2, UNKNOWN_EXIT, 0.4))
    assert (event.code, event.signal) == (None, None)
    assert lifecycle_text(event)[1] == (
        "worker 2 stopped unexpectedly (exit status unknown); restarting in 0.4 s"
    )
    hup = exit_event(2, 77, -int(signal.SIGHUP), None)
    assert (hup.code, hup.signal) == (None, "SIGHUP")  # a real SIGHUP is still one
    assert Crash(2, None, None).how == "exit status unknown"


def test_wait_drained_is_bounded() -> None:
    async def main() -> None:
        done, never = asyncio.Event(), asyncio.Event()
        done.set()
        await asyncio.wait_for(wait_drained([done, never], 0.01), 2)

    asyncio.run(main())


class _Worker:
    def __init__(self) -> None:
        self.signals: list[int] = []

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)


def test_a_crash_page_is_no_still_the_old_code_notice() -> None:
    config = Config.from_options({"app": "main:app", "reload": True})
    workers = {1: _Worker()}
    notices = BrowserNotices.for_config(config, workers, lambda _e: None)
    try:
        report = notices.observing(lambda _e: None)
        report(WorkerReady(1, 101, 5.0, is_broken=True))
        report(WorkerExited(2, 102, 3, None, is_expected=False, has_crash_page=True))
        assert notices.board is not None
        assert read_notices(str(notices.board.path), 0) == []
        assert workers[1].signals == []
    finally:
        notices.close()
