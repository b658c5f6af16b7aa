"""``--reload`` beyond the default: the restart strategy, a Unix socket, a crash loop."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import httpx

from devserve.stepaside import YIELD_NICE
from tests.e2e.test_reload import (
    RELOAD_ARGS,
    app_source,
    is_watching,
    reap_group,
    reaping_orphans,
    reload_server,
    wait_reloads,
    wait_served,
    write,
)
from tests.helpers import assert_no_children, run_cli, start_cli, stop_cli, wait_until

# Dies 0.2 s after import: the worker reports ready, then exits, again and again.
CRASHING = "import os, threading\nthreading.Timer(0.2, os._exit, (7,)).start()"


def test_restart_strategy_serves_new_code_and_refuses_nothing(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    with reload_server(tmp_path, "--reload-strategy", "restart") as cli:
        wait_served(cli, 200, "v1")
        write(tmp_path / "main.py", app_source("v2"))
        statuses: list[int] = []

        def new_code_served() -> bool:
            # Connection refused would raise here: the socket stays bound across the gap.
            response = httpx.get(cli.url, timeout=3)
            statuses.append(response.status_code)
            return response.text == "v2"

        wait_until(new_code_served, 8, step_s=0.01)
        assert set(statuses) == {200}
        wait_reloads(cli, 1)


def test_reload_over_a_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "dev.sock"
    write(tmp_path / "main.py", app_source("v1"))
    with reaping_orphans():
        cli = start_cli(["main:app", *RELOAD_ARGS, "--uds", str(path)], tmp_path)
        try:
            cli.wait_for(re.escape(f"http+unix://{path}"))
            wait_until(lambda: is_watching(cli.proc.pid), 5)
            transport = httpx.HTTPTransport(uds=str(path))
            with httpx.Client(transport=transport, base_url="http://devserve", timeout=3) as client:
                assert client.get("/").text == "v1"
                write(tmp_path / "main.py", app_source("v2"))
                wait_until(lambda: client.get("/").text == "v2", 8, step_s=0.05)
        finally:
            code = stop_cli(cli)
            reap_group(cli.proc.pid)
            assert_no_children(cli.proc.pid)
    assert code == 0, cli.output()


def test_crash_loop_backs_off_and_a_fix_recovers(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1", prelude=CRASHING))
    with reload_server(tmp_path) as cli:
        cli.wait_for(r"stopped unexpectedly \(exit code 7\); restarting in", timeout_s=5)
        window_s = 3.0
        time.sleep(window_s)  # a fixed observation window, not synchronisation
        crashes = sum("stopped unexpectedly" in line for line in list(cli.lines))
        # Backoff 0.1 s doubling: within 3 s at most a handful of restarts, never a spin.
        assert 2 <= crashes <= 6, cli.output()
        delays = [float(m) for m in re.findall(r"restarting in ([0-9.]+) s", cli.output())]
        assert delays == sorted(delays) and delays[-1] > delays[0], delays
        write(tmp_path / "main.py", app_source("v2"))
        wait_served(cli, 200, "v2")


def test_port_already_in_use_under_reload_is_one_line(tmp_path: Path) -> None:
    write(tmp_path / "main.py", app_source("v1"))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli(["main:app", "--reload", "--port", str(port)], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"devserve: error: port {port} on 127.0.0.1 is already in use"
        " (another server running? try --port)"
    ]


def test_broken_at_start_still_says_where_it_serves_then_recovers(tmp_path: Path) -> None:
    write(tmp_path / "main.py", "def app(:\n")
    with reload_server(tmp_path) as cli:  # waits for the "serving on URL" line
        cli.wait_for(r"WARNING: +the app could not start")
        wait_served(cli, 503, "SyntaxError")
        write(tmp_path / "main.py", app_source("v1"))
        wait_served(cli, 200, "v1")


def test_a_same_size_save_within_the_second_is_not_served_from_stale_bytecode(
    tmp_path: Path,
) -> None:
    # Python trusts a .pyc whose recorded mtime (whole seconds) and size match the source:
    # "v1" -> "v2" in the same second would run the old code unless the worker drops it.
    write(tmp_path / "version.py", "VERSION = 'v1'\n")
    write(
        tmp_path / "main.py", app_source("unused", prelude="import version", body="version.VERSION")
    )
    first = (tmp_path / "version.py").stat()
    with reload_server(tmp_path, env={"PYTHONDONTWRITEBYTECODE": ""}) as cli:
        wait_served(cli, 200, "v1")
        cached = tmp_path / "__pycache__"
        wait_until(lambda: any(cached.glob("version.*.pyc")), 5)  # the worker wrote it
        staged = tmp_path / "version.staged"  # not watched: only the rename below is seen
        staged.write_text("VERSION = 'v2'\n")
        os.utime(staged, ns=(first.st_atime_ns, first.st_mtime_ns))  # same second, same size
        os.replace(staged, tmp_path / "version.py")
        wait_served(cli, 200, "v2")


def _nice_values(pid: int) -> set[int]:
    """The nice value of every thread of `pid` (Linux)."""
    return {os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def import_gate(release: Path) -> str:
    """An app prelude whose import waits (20 s at most) until `release` exists."""
    return (
        "import time\n"
        "_end = time.monotonic() + 20\n"
        f"while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < _end:\n"
        "    time.sleep(0.01)"
    )


def test_the_replaced_worker_yields_the_cpu_while_its_successor_imports(tmp_path: Path) -> None:
    # v1 answers with its pid and keeps a second thread; v2's import waits for a file, so
    # the moment "v2 is importing, v1 still serves" lasts as long as the test needs.
    threaded = (
        "import threading\nthreading.Thread(target=threading.Event().wait, daemon=True).start()"
    )
    write(tmp_path / "main.py", app_source("v1", prelude=threaded, body="str(os.getpid())"))
    release = tmp_path / "release"
    gate = import_gate(release)
    with reload_server(tmp_path) as cli:
        old = int(wait_served(cli, 200, ""))
        base = os.getpriority(os.PRIO_PROCESS, cli.proc.pid)
        assert _nice_values(old) == {base}
        assert len(os.listdir(f"/proc/{old}/task")) >= 2  # main + the thread
        write(tmp_path / "main.py", app_source("v2", prelude=gate, body="str(os.getpid())"))
        wait_until(lambda: _nice_values(old) == {min(19, base + YIELD_NICE)}, 5)
        assert httpx.get(cli.url, timeout=3).text == str(old)  # still serving, meanwhile
        assert os.getpriority(os.PRIO_PROCESS, cli.proc.pid) == base  # the supervisor is not
        release.touch()
        served: list[str] = []

        def new_worker_serves() -> bool:
            served.append(httpx.get(cli.url, timeout=3).text)
            return served[-1] != str(old)

        wait_until(new_worker_serves, 10)
        assert _nice_values(int(served[-1])) == {base}


def test_saving_a_module_back_and_forth_serves_each_version(tmp_path: Path) -> None:
    # The fork server keeps the project's modules compiled (devserve.codecache); whatever
    # it holds, each save must be served as written, here without any .pyc to fall back on.
    write(
        tmp_path / "main.py", app_source("unused", prelude="import version", body="version.VERSION")
    )
    with reload_server(tmp_path, env={"PYTHONDONTWRITEBYTECODE": "1"}) as cli:
        for number, version in enumerate(["v1", "v2", "v1", "v2", "v3"], start=1):
            write(tmp_path / "version.py", f"VERSION = {version!r}\n")
            wait_served(cli, 200, version)
            wait_reloads(cli, number - 1)


def test_a_new_connection_during_the_import_is_answered_by_the_new_code(tmp_path: Path) -> None:
    # The old worker steps aside when the new generation starts: new connections wait in
    # the backlog (up to HOLD_S) and the new worker answers them once it is ready.
    release = tmp_path / "release"
    gate = import_gate(release)
    write(tmp_path / "main.py", app_source("v1", body="str(os.getpid())"))
    with reload_server(tmp_path) as cli:
        old = int(wait_served(cli, 200, ""))
        base = os.getpriority(os.PRIO_PROCESS, cli.proc.pid)
        write(tmp_path / "main.py", app_source("v2", prelude=gate, body="'v2'"))
        wait_until(lambda: _nice_values(old) != {base}, 5, step_s=0.005)  # it stepped aside
        host, port = cli.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            time.sleep(0.02)  # the old worker, were it accepting, would answer v1 meanwhile
            release.touch()
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        assert answer.endswith(b"\r\n\r\nv2"), answer
