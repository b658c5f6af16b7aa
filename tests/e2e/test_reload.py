"""The real ``devserve APP --reload`` command: edits, broken code, batching, ignores, crashes.

Every test runs the supervisor as a subprocess in `tmp_path` on 127.0.0.1 port 0, waits
until its file watcher is in place (an inotify watch exists in the supervisor), edits
files, and polls the server with httpx through `wait_until`. Negative checks ("no reload
happens") are bounded too: `assert_stays` watches for a fixed time.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from devserve.spare import SPARE_NAME
from tests.helpers import (
    SLOW_APP,
    CLIProcess,
    assert_no_children,
    descendants,
    has_open_connection,
    start_server_cli,
    stop_cli,
    wait_until,
)

RELOAD_ARGS = ["--reload", "--host", "127.0.0.1", "--reload-delay", "0.05"]
MARKER = "imports.log"

APP = """
import os
import pathlib

{prelude}
with open(pathlib.Path(__file__).with_name("{marker}"), "a") as _log:
    _log.write("imported\\n")

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = {body}
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": body.encode()}})
"""


def app_source(version: str, *, prelude: str = "", body: str = "VERSION") -> str:
    return APP.format(version=version, prelude=prelude, body=body, marker=MARKER)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def fetch(url: str) -> tuple[int, str]:
    """(status, body) of GET `url`, or (0, the error) when the request fails."""
    try:
        response = httpx.get(url, timeout=3)
    except httpx.HTTPError as exc:
        return 0, repr(exc)
    return response.status_code, response.text


def wait_served(cli: CLIProcess, status: int, text: str, timeout_s: float = 8.0) -> str:
    """Wait until the server answers `status` with a body containing `text`; return it."""
    seen: list[tuple[int, str]] = []

    def served() -> bool:
        seen.append(fetch(cli.url))
        return seen[-1][0] == status and text in seen[-1][1]

    try:
        wait_until(served, timeout_s, step_s=0.05)
    except AssertionError:
        msg = f"never served {status} {text!r}; last {seen[-1:]}; output:\n{cli.output()}"
        raise AssertionError(msg) from None
    return seen[-1][1]


def reloads(cli: CLIProcess) -> int:
    """How many reloads (successful or failed) the supervisor reported."""
    return sum("reloaded in" in line or "reload failed" in line for line in list(cli.lines))


def wait_reloads(cli: CLIProcess, count: int, timeout_s: float = 8.0) -> None:
    try:
        wait_until(lambda: reloads(cli) >= count, timeout_s)
    except AssertionError:
        msg = f"expected {count} reloads; output:\n{cli.output()}"
        raise AssertionError(msg) from None


def assert_stays(predicate: Callable[[], bool], duration_s: float) -> None:
    """Fail if `predicate` turns false at any check during `duration_s` (bounded)."""
    with pytest.raises(AssertionError, match="condition not met"):
        wait_until(lambda: not predicate(), duration_s, step_s=0.02)


def imports(tmp_path: Path) -> int:
    marker = tmp_path / MARKER
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def is_watching(pid: int) -> bool:
    """True once process `pid` holds an inotify instance with at least one watch."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd) == "anon_inode:inotify":
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
                if "inotify wd:" in info:
                    return True
    return False


def is_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError):
        return 0


def is_spare(pid: int) -> bool:
    """A worker the fork server forked in advance, still waiting for its generation."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == SPARE_NAME.decode()
    except OSError:
        return False


def worker_pids(cli: CLIProcess) -> list[int]:
    """Live workers: every descendant except the fork server and its waiting spare."""
    return [
        pid
        for pid in descendants(cli.proc.pid)
        if is_alive(pid)
        and not is_spare(pid)
        and not (_parent(pid) == cli.proc.pid and "devserve.forkserver" in _cmdline(pid))
    ]


def the_worker(cli: CLIProcess) -> int:
    """The one live worker (waits out a draining generation)."""
    found: list[int] = []

    def one() -> bool:
        found[:] = worker_pids(cli)
        return len(found) == 1

    wait_until(one, 5)
    return found[0]


@contextlib.contextmanager
def serving(
    root: Path, argv: list[str], env: dict[str, str] | None = None, *, is_reload: bool = True
) -> Iterator[CLIProcess]:
    """Run ``devserve ARGV`` in `root` until the block ends (under --reload: once watching).

    On the way out it must exit 0 (a clean Ctrl+C) and leave no process behind.
    """
    with reaping_orphans():
        cli = start_server_cli(argv, root, env)
        try:
            if is_reload:
                wait_until(lambda: is_watching(cli.proc.pid), 5)
            yield cli
        finally:
            code = stop_cli(cli)
            reap_group(cli.proc.pid)
            assert_no_children(cli.proc.pid)
    assert code == 0, cli.output()


def reload_server(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[CLIProcess]:
    """Run ``devserve main:app --reload`` until the block ends; check nothing is left."""
    return serving(tmp_path, ["main:app", *RELOAD_ARGS, *extra], env)


_PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def reaping_orphans() -> Iterator[None]:
    """Make this process the subreaper of orphaned descendants while the block runs.

    A worker forked by the fork server outlives a fork-server rebuild (after a dependency
    or ``--env-file`` change) and is then re-parented. Without a subreaper it goes to PID
    1, which in some containers never reaps: its zombie would stay in the CLI's process
    group and `assert_no_children` could not tell it from a leak.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _group_members(pgid: int) -> dict[int, tuple[str, int]]:
    """{pid: (state, parent pid)} of every process in process group `pgid`."""
    members = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                members[int(entry.name)] = (fields[0], int(fields[1]))
    return members


def reap_group(pgid: int) -> None:
    """Wait (bounded) until group `pgid` holds only zombies, then reap those adopted here."""
    try:
        wait_until(lambda: all(s == "Z" for s, _ in _group_members(pgid).values()), 5)
    finally:
        for pid, (_, parent) in _group_members(pgid).items():
            if parent == os.getpid():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)


# -- edits ----------------------------------------------------------------------------------


def test_edit_serves_the_new_code(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    with reload_server(tmp_path) as cli:
        assert fetch(cli.url) == (200, "v1")
        write(tmp_path / "main.py", app_source("v2"))
        wait_served(cli, 200, "v2")
        cli.wait_for(r"reloaded in \d+ ms \[\w+\] \(main\.py\)")
        assert reloads(cli) == 1
        assert imports(tmp_path) == 2


def _broken_then_fixed(tmp_path: Path, cli: CLIProcess, broken: str, expected: list[str]) -> None:
    write(tmp_path / "main.py", broken)
    body = wait_served(cli, 503, "could not start")
    for text in expected:
        assert text in body, body
    cli.wait_for(r"reload failed \(main\.py\): serving the error until the next save")
    assert cli.proc.poll() is None
    write(tmp_path / "main.py", app_source("fixed"))
    wait_served(cli, 200, "fixed")
    assert cli.proc.poll() is None


def test_syntax_error_serves_503_naming_file_and_line_then_fix_reloads(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    broken = app_source("v2") + "\n\ndef broken(:\n    pass\n"
    line = broken.splitlines().index("def broken(:") + 1
    with reload_server(tmp_path) as cli:
        assert fetch(cli.url) == (200, "v1")
        path = tmp_path.resolve() / "main.py"
        _broken_then_fixed(tmp_path, cli, broken, [f"{path}:{line}", "SyntaxError"])


def test_import_time_exception_serves_503_then_fix_reloads(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    broken = app_source("v2", prelude='raise RuntimeError("boom at import")')
    line = broken.splitlines().index('raise RuntimeError("boom at import")') + 1
    with reload_server(tmp_path) as cli:
        assert fetch(cli.url) == (200, "v1")
        path = tmp_path.resolve() / "main.py"
        expected = [f"{path}:{line}", "RuntimeError: boom at import", f"line {line}"]
        _broken_then_fixed(tmp_path, cli, broken, expected)


def test_two_hundred_files_saved_at_once_reload_once(tmp_path: Path) -> None:
    names = [f"mod{index:03d}" for index in range(200)]
    for name in names:
        write(tmp_path / "pkg" / f"{name}.py", "VALUE = 1\n")
    write(tmp_path / "pkg" / "__init__.py", "".join(f"from . import {n}\n" for n in names))
    write(tmp_path / "main.py", app_source("v1", prelude="import pkg"))
    with reload_server(tmp_path, "--reload-delay", "0.3") as cli:
        assert fetch(cli.url) == (200, "v1")
        assert imports(tmp_path) == 1
        for name in names:
            (tmp_path / "pkg" / f"{name}.py").write_text("VALUE = 2\n")
        wait_reloads(cli, 1)
        assert_stays(lambda: reloads(cli) == 1 and imports(tmp_path) == 2, 1.5)
        assert fetch(cli.url) == (200, "v1")
        [line] = [line for line in cli.lines if "reloaded in" in line]
        assert " ..." in line  # 200 paths, the first three named


def test_several_files_saved_together_reload_once_with_the_default_quiet_period(
    tmp_path: Path,
) -> None:
    # A one-file save is handled after one 2 ms watcher step; several files saved together
    # ("save all", a formatter, a checkout) must still wait for the quiet period and be one
    # reload. Each new text is written under a name the watcher ignores first, then moved
    # onto its module in a tight loop, as editors and git do.
    names = [f"mod{index}" for index in range(10)]
    for name in names:
        write(tmp_path / "pkg" / f"{name}.py", "VALUE = 1\n")
    write(tmp_path / "pkg" / "__init__.py", "".join(f"from . import {n}\n" for n in names))
    write(tmp_path / "main.py", app_source("v1", prelude="import pkg"))
    with reload_server(tmp_path, "--reload-delay", "0.005") as cli:  # the default (last wins)
        assert fetch(cli.url) == (200, "v1")
        for name in names:
            write(tmp_path / "pkg" / f"{name}.py.new", "VALUE = 2\n")
        for name in names:
            os.replace(tmp_path / "pkg" / f"{name}.py.new", tmp_path / "pkg" / f"{name}.py")
        wait_reloads(cli, 1)
        assert_stays(lambda: reloads(cli) == 1 and imports(tmp_path) == 2, 1.0)


# -- what is (not) watched ------------------------------------------------------------------

IGNORED = [
    ".venv/lib/python3.11/site-packages/dep.py",
    "__pycache__/helper.py",
    ".git/hooks/hook.py",
    "node_modules/tool/build.py",
    "generated/out.py",
    "src/generated/nested.py",
]


def test_ignored_directories_do_not_reload(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    write(tmp_path / ".gitignore", "generated/\n")
    for rel in IGNORED:
        write(tmp_path / rel, "X = 1\n")
    with reload_server(tmp_path) as cli:
        for rel in IGNORED:
            write(tmp_path / rel, "X = 2\n")
            new = (tmp_path / rel).with_name("new_module.py")
            write(new, "Y = 1\n")
        write(tmp_path / "node_modules" / "fresh" / "deep" / "x.py", "Z = 1\n")
        assert_stays(lambda: reloads(cli) == 0, 1.5)
        assert imports(tmp_path) == 1
        # The watcher is alive: a real edit still reloads.
        write(tmp_path / "main.py", app_source("v2"))
        wait_served(cli, 200, "v2")
        assert reloads(cli) == 1


def test_new_python_file_reloads(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    write(tmp_path / ".venv" / "bin" / "python.py", "")  # an ignored dir exists
    with reload_server(tmp_path) as cli:
        write(tmp_path / "extra.py", "A = 1\n")
        wait_reloads(cli, 1)
        cli.wait_for(r"reloaded in .*\(extra\.py\)")
        write(tmp_path / "sub" / "deeper" / "new.py", "B = 1\n")
        wait_reloads(cli, 2)
        assert imports(tmp_path) == 3
        assert fetch(cli.url) == (200, "v1")


# -- crashes and signals ----------------------------------------------------------------------


def test_killed_worker_is_reported_and_replaced(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    with reload_server(tmp_path) as cli:
        worker = the_worker(cli)
        os.kill(worker, signal.SIGKILL)
        cli.wait_for(r"worker 1 stopped unexpectedly \(killed by SIGKILL\); restarting in")
        wait_served(cli, 200, "v1")
        assert the_worker(cli) != worker
        assert cli.proc.poll() is None


def test_supervisor_killed_takes_every_worker_down(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    with reaping_orphans():
        cli = start_server_cli(["main:app", *RELOAD_ARGS], tmp_path)
        workers: list[int] = []
        try:
            assert fetch(cli.url) == (200, "v1")
            # the fork server's spare (forked in advance for the next reload) goes down too
            wait_until(lambda: any(is_spare(pid) for pid in descendants(cli.proc.pid)), 10)
            workers = worker_pids(cli) + [p for p in descendants(cli.proc.pid) if is_spare(p)]
            assert len(workers) == 2
            os.kill(cli.proc.pid, signal.SIGKILL)
            cli.proc.wait(5)
            started = time.monotonic()
            wait_until(lambda: not any(is_alive(pid) for pid in workers), 3)
            assert time.monotonic() - started < 2.5
        finally:
            stop_cli(cli)
            reap_group(cli.proc.pid)
        assert_no_children(cli.proc.pid)


def _ctrl_c_with_request_in_flight(tmp_path: Path, *, whole_group: bool) -> None:
    write(tmp_path / "main.py", SLOW_APP)
    result: list[tuple[int, str]] = []
    code: int | None = None
    with reaping_orphans():
        cli = start_server_cli(
            ["main:app", *RELOAD_ARGS, "--timeout-graceful-shutdown", "5"], tmp_path
        )
        thread = threading.Thread(target=lambda: result.append(fetch(cli.url + "/?1.5")))
        try:
            worker = the_worker(cli)
            thread.start()
            wait_until(lambda: has_open_connection(worker), 5)
            if whole_group:  # what a terminal's Ctrl+C does
                os.killpg(cli.proc.pid, signal.SIGINT)
            else:
                os.kill(cli.proc.pid, signal.SIGINT)
            code = cli.proc.wait(10)
        finally:
            stop_cli(cli)
            if thread.is_alive() or thread.ident is not None:
                thread.join(10)
            reap_group(cli.proc.pid)
    assert_no_children(cli.proc.pid)
    assert code == 0
    assert result == [(200, "finished")], cli.output()
    assert "lifespan shutdown ran" in cli.output()


def test_sigint_to_supervisor_lets_in_flight_request_finish(tmp_path: Path) -> None:
    _ctrl_c_with_request_in_flight(tmp_path, whole_group=False)


def test_ctrl_c_lets_in_flight_request_finish(tmp_path: Path) -> None:
    _ctrl_c_with_request_in_flight(tmp_path, whole_group=True)


def test_sighup_reloads(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    with reload_server(tmp_path) as cli:
        worker = the_worker(cli)
        os.kill(cli.proc.pid, signal.SIGHUP)
        cli.wait_for(r"reloaded in \d+ ms \[\w+\]$")
        wait_until(lambda: worker_pids(cli) not in ([], [worker]), 5)
        assert the_worker(cli) != worker
        assert fetch(cli.url) == (200, "v1")
        assert imports(tmp_path) == 2


# -- availability -----------------------------------------------------------------------------


class _Hammer:
    """Sequential keep-alive requests from a thread until stopped (bounded)."""

    def __init__(self, url: str, max_requests: int = 50_000, max_s: float = 20.0) -> None:
        self.url = url
        self.max_requests = max_requests
        self.max_s = max_s
        self.last = ""
        self.count = 0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        with httpx.Client(timeout=5) as client:
            while (
                not self.stop.is_set()
                and self.count < self.max_requests
                and time.monotonic() < deadline
            ):
                self.count += 1
                try:
                    response = client.get(self.url)
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:80]}")
                self.last = response.text


def test_no_request_fails_during_reloads(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v0"))
    with reload_server(tmp_path) as cli:
        hammer = _Hammer(cli.url)
        hammer.thread.start()
        try:
            for version in range(1, 11):
                write(tmp_path / "main.py", app_source(f"v{version}"))
                wait_until(lambda v=version: hammer.last == f"v{v}", 8)  # type: ignore[misc]
        finally:
            hammer.stop.set()
            hammer.thread.join(10)
        assert reloads(cli) == 10
        assert hammer.count > 10
        assert hammer.failures == [], (
            f"{len(hammer.failures)} of {hammer.count} failed: {hammer.failures}"
        )


# -- environment file -------------------------------------------------------------------------


def test_env_file_edit_reloads_with_new_values(tmp_path: Path) -> None:
    body = 'os.environ.get("GREETING", "-") + "|" + os.environ.get("OTHER", "missing")'
    write(tmp_path / "main.py", app_source("v1", body=body))
    write(tmp_path / ".env", "GREETING=hello\nOTHER=present\n")
    env = {key: value for key, value in os.environ.items() if key not in {"GREETING", "OTHER"}}
    with reload_server(tmp_path, "--env-file", ".env", env=env) as cli:
        assert fetch(cli.url) == (200, "hello|present")
        write(tmp_path / ".env", "GREETING=bonjour\n")
        wait_served(cli, 200, "bonjour|missing")
        cli.wait_for(r"reloaded in .*\(.*\.env\)")
        assert reloads(cli) == 1
