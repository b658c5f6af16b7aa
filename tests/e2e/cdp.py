"""A headless Debian Chromium driven over the Chrome DevTools protocol, for browser tests.

No Playwright download: the system ``chromium`` is started with ``--remote-debugging-port=0``
(the port is read back from its ``DevTools listening on ws://127.0.0.1:...`` line), the page
target is found through ``/json/list`` on 127.0.0.1, and commands go over the `websockets`
sync client (already a test dependency). Every wait is bounded; the browser's process group
is killed and checked gone on exit.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.helpers import wait_until

START_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 15.0
_LISTENING = re.compile(r"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")


def require_chromium() -> str:
    """The chromium executable, or skip the test saying how to get it."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium not on PATH (Debian package chromium: apt-get install -y chromium)")
    return path


class Page:
    """One browser tab: send CDP commands, evaluate JavaScript, take screenshots."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result (events in between are skipped)."""
        number = next(self.ids)
        self.ws.send(json.dumps({"id": number, "method": method, "params": params}))
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                msg = f"no answer to {method} within {COMMAND_TIMEOUT_S} s"
                raise AssertionError(msg)
            reply = json.loads(self.ws.recv(timeout=remaining))
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        """The value of `expression` in the page, or None while it is (re)loading."""
        try:
            result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        except RuntimeError:
            return None
        if "exceptionDetails" in result:
            return None
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, expected: Any, timeout_s: float) -> float:
        """Wait until `expression` evaluates to `expected`; return the seconds it took."""
        started = time.monotonic()
        seen: list[Any] = []

        def matches() -> bool:
            value = self.evaluate(expression)
            seen.append(value)
            return bool(value == expected)

        try:
            wait_until(matches, timeout_s=timeout_s, step_s=0.02)
        except AssertionError:
            msg = f"{expression} never became {expected!r} in {timeout_s} s; last {seen[-3:]!r}"
            raise AssertionError(msg) from None
        return time.monotonic() - started

    def screenshot(self, path: Path, *, dark: bool) -> None:
        """Save a PNG of the viewport in the light or dark color scheme."""
        scheme = "dark" if dark else "light"
        self.call(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextlib.contextmanager
def chromium_page(profile: Path, width: int = 1200, height: int = 900) -> Iterator[Page]:
    """Start headless Chromium with an empty profile and yield its first tab."""
    executable = require_chromium()
    argv = [
        executable,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    env = {**os.environ, "HOME": str(profile.parent)}
    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    found: list[re.Match[str]] = []
    log: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            match = _LISTENING.search(line)
            if match:
                found.append(match)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        try:
            wait_until(lambda: bool(found) or proc.poll() is not None, timeout_s=START_TIMEOUT_S)
        except AssertionError:
            raise AssertionError("chromium did not start:\n" + "".join(log[-30:])) from None
        if not found:
            raise AssertionError("chromium exited:\n" + "".join(log[-30:]))
        port = found[0].group(2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            targets = json.load(reply)
        page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        with connect(page_url, max_size=None, open_timeout=10) as ws:
            page = Page(ws)
            page.call("Page.enable")
            page.call("Runtime.enable")
            page.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield page
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            wait_until(lambda: proc.poll() is not None and not _group_alive(proc.pid), timeout_s=10)
        except AssertionError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
            wait_until(lambda: not _group_alive(proc.pid), timeout_s=5)
        reader.join(5)
        if proc.stderr is not None:
            proc.stderr.close()
