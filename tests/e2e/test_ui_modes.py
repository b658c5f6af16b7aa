"""``--ui json`` and ``--ui plain`` through the real command line, in both modes.

JSON output must parse line by line, from the first line to the exit summary, with the
app's own ``print()`` output among the objects; plain output marks slow requests and ends
with the summary line.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.test_reload import RELOAD_ARGS, is_watching, reap_group, reaping_orphans
from tests.helpers import SLOW_APP as HELPERS_SLOW_APP
from tests.helpers import (
    CLIProcess,
    assert_no_children,
    has_open_connection,
    run_cli,
    start_cli,
    start_server_cli,
    stop_cli,
    wait_until,
)

APP = """
import sys

VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    print("handling", scope["path"])
    print("to stderr", file=sys.stderr)
    status = 500 if scope["path"] == "/fail" else 200
    await send({{"type": "http.response.start", "status": status, "headers": []}})
    await send({{"type": "http.response.body", "body": VERSION.encode()}})
"""

SLOW_APP = """
import asyncio


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(0.3)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def write_app(path: Path, version: str) -> None:
    (path / "main.py").write_text(textwrap.dedent(APP.format(version=version)))


def records(cli: CLIProcess) -> list[dict[str, Any]]:
    """Every output line parsed as JSON (a line that is not JSON fails the test)."""
    parsed = []
    for line in list(cli.lines):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            msg = f"not a JSON line: {line!r}\noutput:\n{cli.output()}"
            raise AssertionError(msg) from None
    return parsed


def of_type(cli: CLIProcess, kind: str) -> list[dict[str, Any]]:
    return [r for r in records(cli) if r["type"] == kind]


def wait_json(cli: CLIProcess, kind: str, count: int = 1, timeout_s: float = 10.0) -> None:
    try:
        wait_until(lambda: len(of_type(cli, kind)) >= count, timeout_s)
    except AssertionError:
        msg = f"fewer than {count} {kind!r} objects; output:\n{cli.output()}"
        raise AssertionError(msg) from None


@contextmanager
def json_server(tmp_path: Path, *extra: str) -> Iterator[CLIProcess]:
    """Run ``devserve main:app --ui json --port 0 EXTRA``; read the URL from JSON."""
    with reaping_orphans():
        cli = start_cli(["main:app", "--ui", "json", "--port", "0", *extra], tmp_path)
        try:
            wait_json(cli, "server_started")
            cli.url = of_type(cli, "server_started")[0]["urls"][0]
            yield cli
        finally:
            stop_cli(cli)
            reap_group(cli.proc.pid)
            assert_no_children(cli.proc.pid)


def get(url: str) -> str:
    return httpx.get(url, timeout=5).text


def check_common(cli: CLIProcess) -> dict[str, Any]:
    """Every line is an object with a type and a time; the last is the summary."""
    assert cli.proc.returncode == 0, cli.output()
    parsed = records(cli)
    assert parsed, "no output"
    for record in parsed:
        assert isinstance(record["type"], str)
        assert record["time"].endswith("Z")
    summary = parsed[-1]
    assert summary["type"] == "summary", cli.output()
    return summary


def test_json_reload_mode_end_to_end(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    with json_server(tmp_path, *RELOAD_ARGS) as cli:
        wait_until(lambda: is_watching(cli.proc.pid), 5)
        assert get(cli.url + "/first") == "v1"
        wait_json(cli, "request_completed")
        write_app(tmp_path, "v2")
        wait_json(cli, "reload_finished")
        wait_until(lambda: get(cli.url + "/second") == "v2", 8, step_s=0.05)
        assert get(cli.url + "/fail") == "v2"
        wait_json(cli, "request_completed", 3)
    summary = check_common(cli)
    kinds = {r["type"] for r in records(cli)}
    assert {
        "worker_started",
        "server_started",
        "worker_ready",
        "app_output",
        "request_completed",
        "change_detected",
        "reload_finished",
        "worker_draining",
        "worker_exited",
    } <= kinds
    [reload] = of_type(cli, "reload_finished")
    assert reload["files"] == ["main.py"]
    assert reload["ok"] is True
    assert reload["start_method"] in {"fork", "spawn"}
    assert reload["duration_ms"] >= 0
    output = of_type(cli, "app_output")
    assert {"stream": "stdout", "line": "handling /first", "generation": 1}.items() <= output[
        0
    ].items()
    assert any(o["stream"] == "stderr" and o["line"] == "to stderr" for o in output)
    requests = of_type(cli, "request_completed")
    assert summary["requests"] == len(requests)
    assert summary["errors"] == sum(r["status"] >= 500 for r in requests) == 1
    assert summary["reloads"] == 1
    exits = of_type(cli, "worker_exited")
    assert all(e["is_expected"] for e in exits)
    assert {e["generation"] for e in exits} >= {1, 2}


def test_json_reports_a_crashed_worker(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    with json_server(tmp_path, *RELOAD_ARGS) as cli:
        pid = of_type(cli, "worker_ready")[0]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_json(cli, "worker_exited")
        wait_json(cli, "worker_ready", 2)
    check_common(cli)
    [crash] = [e for e in of_type(cli, "worker_exited") if e["pid"] == pid]
    assert crash["is_expected"] is False
    assert crash["signal"] == "SIGKILL"
    assert crash["code"] is None
    assert crash["retry_in_s"] > 0


def test_json_single_process_mode_end_to_end(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    with json_server(tmp_path) as cli:
        assert get(cli.url + "/a") == "v1"
        assert get(cli.url + "/fail") == "v1"
        wait_json(cli, "request_completed", 2)
    summary = check_common(cli)
    assert [r["path"] for r in of_type(cli, "request_completed")] == ["/a", "/fail"]
    assert of_type(cli, "app_output")[:2] == [
        {"type": "app_output", "time": of_type(cli, "app_output")[0]["time"], "stream": "stdout",
         "line": "handling /a", "generation": None},
        {"type": "app_output", "time": of_type(cli, "app_output")[1]["time"], "stream": "stderr",
         "line": "to stderr", "generation": None},
    ]  # fmt: skip
    assert (summary["requests"], summary["errors"], summary["reloads"]) == (2, 1, 0)
    assert summary["slowest_route"]["route"] in {"/a", "/fail"}
    assert of_type(cli, "server_stopping")


def test_plain_marks_slow_requests_and_ends_with_the_summary(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(SLOW_APP)
    cli = start_server_cli(["main:app", "--ui", "plain", "--slow-ms", "150"], tmp_path)
    try:
        assert get(cli.url + "/fast") == "ok"
        assert get(cli.url + "/slow") == "ok"
        cli.wait_for(
            r'^WARNING:  127\.0\.0\.1:\d+ - "GET /slow HTTP/1\.1" 200 OK \d+\.\d ms 2 B \[slow\]$'
        )
        cli.wait_for(r'^INFO:     127\.0\.0\.1:\d+ - "GET /fast HTTP/1\.1" 200 OK \d+\.\d ms 2 B$')
    finally:
        code = stop_cli(cli)
        assert_no_children(cli.proc.pid)
    assert code == 0, cli.output()
    last = cli.lines[-1]
    assert last.startswith("INFO:     summary: 2 requests, 0 errors, p50 "), cli.output()
    assert "slowest route /slow (p95 " in last


def test_requests_finished_while_stopping_are_in_the_summary(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(HELPERS_SLOW_APP)
    results: list[str] = []
    with json_server(tmp_path, *RELOAD_ARGS) as cli:
        thread = threading.Thread(target=lambda: results.append(get(cli.url + "/?0.5")))
        thread.start()
        wait_until(lambda: has_open_connection(of_type(cli, "worker_ready")[0]["pid"]), 5)
        os.kill(cli.proc.pid, signal.SIGINT)
        thread.join(10)
        wait_until(lambda: cli.proc.poll() is not None, 10)
    assert results == ["finished"]
    summary = check_common(cli)
    assert [r["path"] for r in of_type(cli, "request_completed")] == ["/"]
    assert summary["requests"] == 1
    assert {"stream": "stdout", "line": "lifespan shutdown ran"}.items() <= (
        of_type(cli, "app_output")[-1].items()
    )


def test_plain_reload_mode_app_prints_reach_a_pipe_at_once(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    with reaping_orphans():
        cli = start_server_cli(
            ["main:app", *RELOAD_ARGS, "--ui", "plain"], tmp_path, env={"PYTHONUNBUFFERED": ""}
        )
        try:
            assert get(cli.url + "/printed") == "v1"
            cli.wait_for(r"^handling /printed$")  # not held in a block buffer until exit
        finally:
            code = stop_cli(cli)
            reap_group(cli.proc.pid)
            assert_no_children(cli.proc.pid)
    assert code == 0, cli.output()
    assert cli.lines[-1].startswith("INFO:     summary: 1 request, 0 errors, 0 reloads, p50 ")


def test_json_stdout_stays_json_when_a_preloaded_module_prints(tmp_path: Path) -> None:
    project, site = tmp_path / "project", tmp_path / "site"  # site is outside the project
    project.mkdir()
    site.mkdir()
    (site / "noisy_dependency.py").write_text("print('banner from a dependency')\n")
    (project / "main.py").write_text(
        "import noisy_dependency  # noqa: F401\n" + textwrap.dedent(APP.format(version="v1"))
    )
    stderr_path = tmp_path / "stderr.txt"
    with reaping_orphans(), stderr_path.open("w") as stderr:
        cli = start_cli(
            ["main:app", "--ui", "json", "--port", "0", *RELOAD_ARGS],
            project,
            env={"PYTHONPATH": str(site)},
            stderr_file=stderr,
        )
        try:
            wait_json(cli, "server_started")
            # The fork server preloads noisy_dependency (a third-party module) for the next
            # worker: what it prints then goes to stderr, never into the JSON stream.
            wait_until(lambda: "banner" in stderr_path.read_text(), 10)
            (project / "main.py").write_text((project / "main.py").read_text() + "# edit\n")
            wait_json(cli, "reload_finished")
        finally:
            stop_cli(cli)
            reap_group(cli.proc.pid)
            assert_no_children(cli.proc.pid)
    check_common(cli)  # every stdout line is JSON
    banners = [o for o in of_type(cli, "app_output") if o["line"] == "banner from a dependency"]
    assert [o["generation"] for o in banners] == [1]  # worker 1 imported it itself


def test_json_single_process_startup_failure_is_a_json_object(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("import json\n\nraise RuntimeError('no database')\n")
    done = run_cli(["main:app", "--ui", "json", "--port", "0"], tmp_path)
    assert done.returncode == 3, done
    [line] = done.stdout.splitlines()
    failure = json.loads(line)
    assert failure["type"] == "startup_failed"
    assert (failure["stage"], failure["exc_type"], failure["message"]) == (
        "import",
        "RuntimeError",
        "no database",
    )
    assert failure["filename"].endswith("main.py")
    assert failure["lineno"] == 3
    assert 'main.py", line 3' in failure["traceback"]
    assert done.stderr.splitlines()[-1] == (
        "devserve: error: error while importing main:app: RuntimeError: no database"
    )
