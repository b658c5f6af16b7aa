"""The IDE recipes in examples/ide/ and debugging with pdb, through the real command.

VS Code's ``.vscode/launch.json`` and PyCharm's ``.run/*.run.xml`` both run the *module*
``devserve`` with arguments; each configuration is read from the file, run the way the IDE
would (``python -m devserve ARGS`` in the project folder, with the configured environment)
and must serve. Without ``--reload`` the app must run in the launched process itself,
which is what the IDE's debugger is attached to; under ``--reload`` it runs in a worker.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.serving import devserve
from tests.helpers import (
    assert_no_children,
    start_cli,
    start_server_cli,
    stop_cli,
    wait_until,
)

IDE = Path(__file__).resolve().parents[2] / "examples" / "ide"


def _project(tmp_path: Path) -> Path:
    shutil.copytree(IDE, tmp_path / "project")
    return tmp_path / "project"


def _vscode_configurations() -> list[dict[str, object]]:
    return list(json.loads((IDE / ".vscode" / "launch.json").read_text())["configurations"])


def _pycharm_configurations() -> list[dict[str, str]]:
    found = []
    for path in sorted((IDE / ".run").glob("*.run.xml")):
        configuration = ET.parse(path).getroot().find("configuration")  # noqa: S314 - our file
        assert configuration is not None, path
        options = {o.get("name", ""): o.get("value", "") for o in configuration.iter("option")}
        envs = {e.get("name", ""): e.get("value", "") for e in configuration.iter("env")}
        found.append({"file": path.name, **options, "envs": json.dumps(envs)})
    return found


def _served_by(url: str) -> int:
    text = httpx.get(url, timeout=5).text
    assert text.startswith("served by pid "), text
    return int(text.rsplit(" ", 1)[1])


def _check_serves(project: Path, args: list[str], env: dict[str, str] | None = None) -> None:
    with devserve(project, *args, env=env) as cli:
        if "--reload" in args:
            wait_until(lambda: httpx.get(cli.url, timeout=5).status_code == 200, 10)
            assert _served_by(cli.url) != cli.proc.pid, "under --reload a worker serves"
        else:
            assert _served_by(cli.url) == cli.proc.pid, "the debugged process serves"


@pytest.mark.parametrize("configuration", _vscode_configurations(), ids=lambda c: str(c["name"]))
def test_vscode_launch_configuration(tmp_path: Path, configuration: dict[str, object]) -> None:
    assert configuration["type"] == "debugpy" and configuration["request"] == "launch"
    assert configuration["module"] == "devserve"
    assert configuration["cwd"] == "${workspaceFolder}"
    args = [str(arg) for arg in configuration["args"]]  # type: ignore[attr-defined]
    _check_serves(_project(tmp_path), args)


@pytest.mark.parametrize("configuration", _pycharm_configurations(), ids=lambda c: c["file"])
def test_pycharm_run_configuration(tmp_path: Path, configuration: dict[str, str]) -> None:
    assert configuration["MODULE_MODE"] == "true"
    assert configuration["SCRIPT_NAME"] == "devserve"
    assert configuration["WORKING_DIRECTORY"] == "$PROJECT_DIR$"
    env = json.loads(configuration["envs"])
    _check_serves(_project(tmp_path), configuration["PARAMETERS"].split(), env)


def test_both_ides_offer_reload_and_single_process_debugging() -> None:
    vscode = [c["args"] for c in _vscode_configurations()]
    pycharm = [c["PARAMETERS"].split() for c in _pycharm_configurations()]
    for argument_lists in (vscode, pycharm):
        flags = {flag for args in argument_lists for flag in args}  # type: ignore[attr-defined]
        assert {"--reload", "--no-reload"} <= flags


def test_pdb_breakpoint_in_single_process_mode(tmp_path: Path) -> None:
    """breakpoint() stops in pdb on devserve's own terminal; `c` lets the request finish."""
    project = _project(tmp_path)
    cli = start_server_cli(["main:app", "--no-reload"], project, stdin=subprocess.PIPE)
    assert cli.proc.stdin is not None
    responses: list[httpx.Response] = []
    try:
        with httpx.Client(timeout=10) as client:
            request = threading.Thread(
                target=lambda: responses.append(client.get(cli.url + "/debug"))
            )
            request.start()
            cli.wait_for(r"^-> await send")  # pdb shows the line it stopped before
            cli.proc.stdin.write("p answer\n")
            cli.proc.stdin.flush()
            cli.wait_for(rf"\(Pdb\) 'served by pid {cli.proc.pid}'")
            assert not responses, "the request waits while pdb has it stopped"
            cli.proc.stdin.write("c\n")
            cli.proc.stdin.flush()
            request.join(10)
        assert responses and responses[0].status_code == 200
    finally:
        # pdb keeps Ctrl+C after `c` (its "Program interrupted"); SIGTERM stops devserve.
        assert stop_cli(cli, signal.SIGTERM) == 0, cli.output()
    assert_no_children(cli.proc.pid)


def test_breakpoint_under_reload_is_skipped_with_a_reason(tmp_path: Path) -> None:
    """A --reload worker has no terminal: breakpoint() says so instead of failing the request."""
    project = _project(tmp_path)
    with devserve(project, "main:app", reload=True) as cli:
        wait_until(lambda: httpx.get(cli.url, timeout=5).status_code == 200, 10)
        response = httpx.get(cli.url + "/debug", timeout=5)
        assert response.status_code == 200
        cli.wait_for(r"breakpoint\(\) at .*main\.py:\d+ skipped: --reload workers have no terminal")
        assert "BdbQuit" not in cli.output()


def test_breakpoint_under_reload_honours_pythonbreakpoint(tmp_path: Path) -> None:
    """PYTHONBREAKPOINT (a remote debugger, or 0) still decides what breakpoint() does."""
    project = _project(tmp_path)
    (project / "hook.py").write_text("def hit():\n    print('custom hook ran', flush=True)\n")
    env = {"PYTHONBREAKPOINT": "hook.hit", "PYTHONPATH": str(project)}
    with devserve(project, "main:app", reload=True, env=env) as cli:
        wait_until(lambda: httpx.get(cli.url, timeout=5).status_code == 200, 10)
        assert httpx.get(cli.url + "/debug", timeout=5).status_code == 200
        cli.wait_for("custom hook ran")
        assert "skipped" not in cli.output()


# -- a real debugger: debugpy (VS Code's Python Debugger) over the Debug Adapter Protocol --

#: Started before devserve through PYTHONPATH, as an IDE injects its debugger: listen on a
#: free loopback port, say which, wait for the IDE (this test) to attach.
_ATTACH_FIRST = """
import os

if os.environ.pop("ATTACH_DEBUGPY", None):  # this process only, not the adapter it starts
    import debugpy

    _host, _port = debugpy.listen(("127.0.0.1", 0))
    print(f"debugpy listening on {_port}", flush=True)
    debugpy.wait_for_client()
"""


class _DAPClient:
    """Just enough of a Debug Adapter Protocol client: requests out, messages in (bounded)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.seq = 0
        self.buffer = b""

    def request(self, command: str, **arguments: object) -> None:
        self.seq += 1
        body = json.dumps(
            {"seq": self.seq, "type": "request", "command": command, "arguments": arguments}
        ).encode()
        self.sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def _message(self) -> dict[str, Any]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        match = re.search(rb"Content-Length: (\d+)", head)
        assert match, head
        length = int(match.group(1))
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        return dict(json.loads(rest[:length]))

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        assert chunk, "the debug adapter closed the connection"
        return chunk

    def wait(self, *, event: str = "", response: str = "", timeout_s: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self._message()
            if event and message.get("event") == event:
                return message
            if response and message.get("command") == response:
                assert message.get("success"), message
                return message
        msg = f"no {event or response} from the debug adapter within {timeout_s} s"
        raise AssertionError(msg)


def test_debugpy_breakpoint_in_single_process_mode(tmp_path: Path) -> None:
    """A breakpoint set over DAP stops the request in the app; continuing finishes it."""
    pytest.importorskip("debugpy", reason="debugpy is not installed (pip install -e '.[test]')")
    project = _project(tmp_path)
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(_ATTACH_FIRST)
    main = project / "main.py"
    line = main.read_text().splitlines().index('    if scope["path"] == "/debug":') + 1
    env = {"PYTHONPATH": str(inject), "ATTACH_DEBUGPY": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    cli = start_cli(["main:app", "--no-reload", "--port", "0"], project, env)
    try:
        dap = _DAPClient(int(cli.wait_for(r"debugpy listening on (\d+)", 20).group(1)))
        dap.request("initialize", adapterID="debugpy", linesStartAt1=True, pathFormat="path")
        dap.wait(response="initialize")
        dap.request("attach", justMyCode=True)
        dap.wait(event="initialized")
        dap.request("setBreakpoints", source={"path": str(main)}, breakpoints=[{"line": line}])
        assert dap.wait(response="setBreakpoints")["body"]["breakpoints"][0]["verified"]
        dap.request("configurationDone")
        dap.wait(response="configurationDone")
        url = cli.wait_for(r"on (http://\S+) ").group(1)
        responses: list[httpx.Response] = []
        request = threading.Thread(target=lambda: responses.append(httpx.get(url, timeout=15)))
        request.start()
        stopped = dap.wait(event="stopped")["body"]
        assert stopped["reason"] == "breakpoint"
        dap.request("stackTrace", threadId=stopped["threadId"])
        frame = dap.wait(response="stackTrace")["body"]["stackFrames"][0]
        assert (frame["name"], frame["line"], frame["source"]["path"]) == ("app", line, str(main))
        assert not responses, "the request waits at the breakpoint"
        dap.request("continue", threadId=stopped["threadId"])
        request.join(10)
        assert responses and responses[0].text == f"served by pid {cli.proc.pid}"
        dap.sock.close()
    finally:
        assert stop_cli(cli) == 0, cli.output()
    assert_no_children(cli.proc.pid)
