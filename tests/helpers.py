"""Test helpers: bounded waiting, an in-thread server, raw-socket clients, the real CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devserve.asgi import ASGIApp
from devserve.config import Config
from devserve.events import Event
from devserve.sockets import bind
from devserve.worker import Worker, loop_factory


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0, step_s: float = 0.01) -> None:
    """Poll `predicate` until true; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            msg = f"condition not met within {timeout_s} s"
            raise AssertionError(msg)
        time.sleep(step_s)


@dataclass
class ThreadedServer:
    """A real devserve Worker on 127.0.0.1:0 in a background thread."""

    host: str
    port: int
    events: list[Event] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _module_app(app: ASGIApp) -> str:
    """Register `app` in a throwaway module so the Worker can import it by name."""
    name = f"_devserve_test_app_{id(app)}"
    module = types.ModuleType(name)
    module.app = app  # type: ignore[attr-defined]
    sys.modules[name] = module
    return f"{name}:app"


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, **options: Any) -> Iterator[ThreadedServer]:
    """Serve `app` with `options` (Config fields) until the block exits."""
    config = Config.from_options({"app": _module_app(app), "port": 0, **options})
    listener = bind(host="127.0.0.1", port=0, uds=None, fd=None, backlog=128, scheme="http")
    port = listener.sock.getsockname()[1]
    server = ThreadedServer("127.0.0.1", port)
    worker_box: dict[str, Any] = {}
    ready = threading.Event()
    failure: list[BaseException] = []

    def emit(event: Event) -> None:
        server.events.append(event)
        if type(event).__name__ == "ServerStarted":
            ready.set()

    def run() -> None:
        loop = loop_factory(config.loop)()
        worker = Worker(config, [listener], emit=emit)
        worker_box["worker"], worker_box["loop"] = worker, loop
        try:
            loop.run_until_complete(worker.serve())
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test below
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "server did not start"
    if failure:
        raise failure[0]
    try:
        yield server
    finally:
        loop = worker_box["loop"]
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(worker_box["worker"].request_stop)
        thread.join(15)
        listener.sock.close()
        assert not thread.is_alive(), "server thread did not stop"


def raw_exchange(port: int, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Send `data`, then read until the server closes (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        return read_until_close(sock, timeout_s)


def read_until_close(sock: socket.socket, timeout_s: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout_s
    chunks = []
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            break
        except TimeoutError:
            msg = "server did not close the connection in time"
            raise AssertionError(msg) from None
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(sock: socket.socket, timeout_s: float = 5.0) -> bytes:
    """Read one response with a content-length body (bounded)."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while time.monotonic() < deadline:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            match = re.search(rb"(?i)content-length: *(\d+)", data[:head_end])
            need = head_end + 4 + (int(match.group(1)) if match else 0)
            if len(data) >= need:
                return data
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    msg = "no complete response in time"
    raise AssertionError(msg)


# -- the real command line ------------------------------------------------------------

_URL = re.compile(r"on (https?://[^\s,]+)")


@dataclass
class CLIProcess:
    """A running `devserve` command with its output collected."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str = ""
    pump: threading.Thread | None = None

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = 10.0) -> re.Match[str]:
        regex = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            for line in list(self.lines):
                match = regex.search(line)
                if match:
                    found.append(match)
                    return True
            return False

        try:
            wait_until(seen, timeout_s)
        except AssertionError:
            msg = f"{pattern!r} not seen; output so far:\n{self.output()}"
            raise AssertionError(msg) from None
        return found[0]


def start_cli(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    pass_fds: tuple[int, ...] = (),
    stderr_file: IO[str] | None = None,
    *,
    stdin: int = subprocess.DEVNULL,
) -> CLIProcess:
    """Start `devserve ARGS` in `cwd`; stdout and stderr are collected line by line.

    With `stderr_file`, stderr goes there instead, and only stdout is collected. `stdin` is
    /dev/null unless a test types into the process (``subprocess.PIPE``, e.g. pdb).
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **(env or {})}
    full_env.pop("FORCE_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "devserve", *args],
        cwd=cwd,
        env=full_env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if stderr_file is None else stderr_file,
        text=True,
        start_new_session=True,
        pass_fds=pass_fds,
    )
    cli = CLIProcess(proc)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            cli.lines.append(line.rstrip("\n"))

    cli.pump = threading.Thread(target=pump, daemon=True)
    cli.pump.start()
    return cli


def start_server_cli(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    *,
    stdin: int = subprocess.DEVNULL,
) -> CLIProcess:
    """Start the CLI on port 0 and wait until it prints the URL it serves on."""
    cli = start_cli([*args, "--port", "0"], cwd, env, stdin=stdin)
    try:
        cli.url = cli.wait_for(_URL.pattern).group(1)
    except AssertionError:
        stop_cli(cli)
        raise
    return cli


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def children_of(pid: int) -> list[int]:
    """PIDs of the live children of `pid` (Linux /proc)."""
    return _children_by_parent().get(pid, [])


def descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of `pid` (Linux /proc)."""
    children = _children_by_parent()
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def stop_cli(cli: CLIProcess, sig: int = signal.SIGINT, timeout_s: float = 15.0) -> int:
    """Stop the CLI by PID; kill it (and its group) if it does not exit in time."""
    proc = cli.proc
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    if cli.pump is not None:
        cli.pump.join(5)
    for stream in (proc.stdout, proc.stdin):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    return proc.returncode


def assert_no_children(pid: int) -> None:
    """No process started by `pid` is left (its session group is checked too)."""
    wait_until(lambda: not descendants(pid), timeout_s=5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, 0)
        msg = f"process group {pid} still has members"
        raise AssertionError(msg)


def run_cli(
    args: list[str], cwd: Path, timeout_s: float = 20.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (for commands that exit by themselves)."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "devserve", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def run_async(coro: Any, timeout_s: float = 10.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def recv_until(sock: socket.socket, done: Callable[[bytes], bool], timeout_s: float = 5.0) -> bytes:
    """Read from `sock` until `done(data)` or the server closes (bounded)."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while not done(data):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            msg = f"condition not met within {timeout_s} s; got {data[-300:]!r}"
            raise AssertionError(msg)
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def has_open_connection(pid: int) -> bool:
    """True when process `pid` holds an established TCP connection (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "01" and parts[9] in inodes:
                return True
    return False


#: An app that sleeps for the seconds in its query string, and says when lifespan
#: shutdown ran: for tests of graceful stops with a request in flight.
SLOW_APP = """
import asyncio

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                print("lifespan shutdown ran", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
            await send({"type": "lifespan.startup.complete"})
    await asyncio.sleep(float(scope["query_string"] or b"0"))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"finished"})
"""


def ws_frame(opcode: int, payload: bytes, *, mask: bool = True) -> bytes:
    """One final WebSocket frame, masked (as a client must) unless told otherwise; < 64 KiB."""
    mask_bit = 0x80 if mask else 0
    if len(payload) < 126:
        head = bytes([0x80 | opcode, mask_bit | len(payload)])
    else:
        head = bytes([0x80 | opcode, mask_bit | 126]) + struct.pack("!H", len(payload))
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
