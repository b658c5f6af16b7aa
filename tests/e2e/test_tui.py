"""The live dashboard in a real terminal: devserve --ui tui inside tmux.

A private tmux server (its own socket, ``tmux -L``) runs a shell in a 120x40 pane; the
test types the devserve command into it, talks to the server over 127.0.0.1, presses keys
with ``send-keys`` and reads the screen with ``capture-pane``. After ``q`` the same shell
records ``stty -a``, so the test sees the terminal devserve gave back; tmux says whether
the cursor is visible. The tmux server is killed by its PID and no process may be left.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import assert_no_children, descendants, wait_until

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

APP = """
def where(n):
    return 10 / n


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/boom":
        where(0)
    if scope["path"] == "/print":
        print("hello from the app")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})
"""


@dataclass
class Pane:
    socket: str
    cwd: Path

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, pattern: str, timeout_s: float = 15.0) -> re.Match[str]:
        regex = re.compile(pattern, re.MULTILINE)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = regex.search(self.screen())
            if match:
                found.append(match)
            return match is not None

        try:
            wait_until(seen, timeout_s, step_s=0.05)
        except AssertionError:
            msg = f"{pattern!r} not on the screen:\n{self.screen()}"
            raise AssertionError(msg) from None
        return found[0]

    def wait_gone(self, pattern: str, timeout_s: float = 10.0) -> None:
        regex = re.compile(pattern, re.MULTILINE)
        try:
            wait_until(lambda: not regex.search(self.screen()), timeout_s, step_s=0.05)
        except AssertionError:
            msg = f"{pattern!r} still on the screen:\n{self.screen()}"
            raise AssertionError(msg) from None


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    name = f"devserve-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "NO_COLOR", "TMUX"}}
    env["TERM"] = "xterm-256color"
    subprocess.run(
        [
            "tmux",
            "-L",
            name,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "120",
            "-y",
            "40",
            "-c",
            str(tmp_path),
            "bash --norc --noprofile",
        ],
        env=env,
        timeout=10,
        check=True,
    )
    result = Pane(name, tmp_path)
    server_pid = int(result.tmux("display-message", "-p", "#{pid}").strip())
    socket_path = Path(result.tmux("display-message", "-p", "#{socket_path}").strip())
    try:
        yield result
    finally:
        with contextlib.suppress(ProcessLookupError):
            for child in descendants(server_pid):
                os.kill(child, signal.SIGKILL)
            os.kill(server_pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{server_pid}").exists(), timeout_s=5)
        assert_no_children(server_pid)
        socket_path.unlink(missing_ok=True)


EDITOR = """#!/bin/sh
echo "$@" > edited.txt
"""


def test_dashboard_in_a_real_terminal(pane: Pane) -> None:
    (pane.cwd / "app.py").write_text(APP)
    editor = pane.cwd / "vim"  # named like vim: opened as `vim +LINE FILE`
    editor.write_text(EDITOR)
    editor.chmod(0o755)
    command = shlex.join(
        [sys.executable, "-m", "devserve", "app:app", "--reload", "--port", "0", "--ui", "tui"]
    )
    pane.keys(
        f"EDITOR={editor} sh -c 'echo $$ > devserve.pid; exec {command}';"
        " stty -a > stty.txt; echo finished",
        "Enter",
    )
    url = pane.wait_for(r"http://127\.0\.0\.1:\d+").group(0)
    pid = int((pane.cwd / "devserve.pid").read_text())
    pane.wait_for(r"● serving")

    # requests appear with their latency; an error with the user's frame
    assert httpx.get(url + "/", timeout=5).status_code == 200
    assert httpx.get(url + "/boom", timeout=5).status_code == 500
    assert httpx.get(url + "/print", timeout=5).status_code == 200
    pane.wait_for(r"GET\s+/\s+200\s+\d+\.\d+ ms")
    pane.wait_for(r"GET\s+/boom\s+500")
    pane.wait_for(r"ZeroDivisionError: division by zero")
    pane.wait_for(r"app\.py:3 in where")
    pane.wait_for(r"│ hello from the app")
    pane.wait_for(r"5xx 1")

    # e opens the error's file:line in $EDITOR, then the dashboard comes back
    pane.keys("e")
    wait_until(lambda: "app.py" in _read(pane.cwd / "edited.txt"), timeout_s=10)
    assert (pane.cwd / "edited.txt").read_text().split() == ["+3", str(pane.cwd / "app.py")]
    pane.wait_for(r"r reload\s+c clear")

    # r reloads
    pane.keys("r")
    pane.wait_for(r"reloaded in \d+ ms")
    pane.wait_for(r"reload \d+(\.\d+)? ms")  # "6.0 ms" below 10 ms

    # d toggles the full-screen dashboard and back
    pane.keys("d")
    pane.wait_for(r"Route\s+Requests ▼")
    pane.wait_for(r"d back to the log")
    pane.keys("d")
    pane.wait_gone(r"d back to the log")
    pane.wait_for(r"r reload\s+c clear")

    # q quits gracefully and gives the terminal back
    children = descendants(pid)
    assert children, "the supervisor should have workers"
    pane.keys("q")
    pane.wait_for(r"^finished$", timeout_s=20)
    screen = pane.screen()
    assert "summary: 3 requests, 1 error, 1 reload" in screen
    stty = (pane.cwd / "stty.txt").read_text()
    assert re.search(r"(?<!-)\becho\b", stty), stty
    assert re.search(r"(?<!-)\bicanon\b", stty), stty
    assert pane.tmux("display-message", "-p", "-t", "t", "#{cursor_flag}").strip() == "1"
    assert not Path(f"/proc/{pid}").exists()
    for child in children:
        assert not Path(f"/proc/{child}").exists(), f"worker {child} outlived devserve"


def start_dashboard(pane: Pane, after: str) -> int:
    """Type the devserve command (then `after`) into the pane; return devserve's PID."""
    (pane.cwd / "app.py").write_text(APP)
    command = shlex.join(
        [sys.executable, "-m", "devserve", "app:app", "--reload", "--port", "0", "--ui", "tui"]
    )
    pane.keys(f"sh -c 'echo $$ > devserve.pid; exec {command}'; {after}", "Enter")
    pane.wait_for(r"● serving")
    return int((pane.cwd / "devserve.pid").read_text())


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stopping_restores_the_terminal(pane: Pane, how: str) -> None:
    pid = start_dashboard(pane, "stty -a > stty.txt")
    if how == "ctrl-c":
        pane.keys("C-c")
    else:
        os.kill(pid, signal.SIGTERM)
    wait_until((pane.cwd / "stty.txt").exists, timeout_s=20)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout_s=10)
    wait_until(lambda: "speed" in (pane.cwd / "stty.txt").read_text(), timeout_s=5)
    stty = (pane.cwd / "stty.txt").read_text()
    assert re.search(r"(?<!-)\becho\b", stty), stty
    assert pane.tmux("display-message", "-p", "-t", "t", "#{cursor_flag}").strip() == "1"


def test_ctrl_z_gives_the_terminal_back_and_fg_redraws(pane: Pane) -> None:
    pid = start_dashboard(pane, "true")
    pane.keys("C-z")
    pane.wait_for(r"Stopped")
    assert pane.tmux("display-message", "-p", "-t", "t", "#{cursor_flag}").strip() == "1"
    pane.keys("stty -a > stopped.txt; clear; fg", "Enter")
    wait_until(lambda: "speed" in _read(pane.cwd / "stopped.txt"), timeout_s=10)
    assert re.search(r"(?<!-)\becho\b", _read(pane.cwd / "stopped.txt"))
    pane.wait_for(r"● serving")  # drawn again after fg
    pane.wait_for(r"r reload\s+c clear")
    pane.keys("q")  # (after fg, bash forgets the rest of the command line)
    pane.wait_for(r"summary: 0 requests", timeout_s=20)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout_s=10)


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
