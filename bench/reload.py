"""Reload latency and lost requests: ``devserve --reload`` against ``uvicorn --reload``, one run.

Usage::

    python bench/reload.py [--saves N] [--reloads-under-load N] [--json]

For each app and each server the script copies a template from ``bench/apps/`` into a fresh
temporary project directory, starts the server there with ``--reload`` and measures:

1. **Save-to-new-response latency.** The script rewrites ``version.py`` (``VERSION = "vN"``),
   taking the time just before the write, then polls ``GET /version`` every ~2 ms with a new
   connection each time (raw socket, ``Connection: close``, 1 s connect and read timeouts)
   until the body is the new version, bounded at 10 s. N saves (default 15), ~0.3 s apart;
   min/p50/p90 in ms. A save not seen within 10 s counts as *missed*.
2. **Failed and stalled requests under load.** A thread sends sequential ``GET /version``
   requests on one keep-alive ``httpx.Client`` (2 s timeout) while the main thread performs
   N saves (default 10), waiting for each new version (polled every 10 ms on new
   connections) and ~0.3 s after it. *Failed* counts connection errors, timeouts and
   non-200 answers; *stalled* counts 200 answers slower than 1 s.

The two apps are ``bench/apps/reload_asgi`` (a bare ASGI app) and ``bench/apps/reload_fastapi``
(FastAPI, 11 routes, a few pydantic models, across ``main``/``routes``/``models``/``version``).
Both servers are started as ``python -m <server>`` from this interpreter, pinned to CPU 0
with ``taskset`` (this script pins itself to CPU 1), listen on 127.0.0.1 only on a free port,
run with ``--no-access-log`` and ``PYTHONDONTWRITEBYTECODE=1`` (a rewrite of the same size
within the same second would otherwise be masked by a stale ``.pyc``); uvicorn uses
``--http h11 --loop uvloop`` and watchfiles, as in ``bench/throughput.py``. Each server runs in
its own session and is always stopped in ``finally``: SIGINT to its process group, 5 s, then
SIGKILL to the group; the script then checks that no process of that session is left.
devserve's ``reloaded in N ms [spawn|fork]`` log lines are collected and summarised.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from throughput import raise_system_exit  # bench/ is on sys.path when run

BENCH_DIR = Path(__file__).resolve().parent
APPS: dict[str, tuple[str, str, str]] = {
    # name: (template dir under bench/apps, ASGI target, lifespan mode)
    "asgi": ("reload_asgi", "app:app", "off"),
    "fastapi": ("reload_fastapi", "main:app", "on"),
}
SERVERS = ("devserve", "uvicorn")
HOST = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = 1
VERSION_FILE = "version.py"
PATH = "/version"
SOCKET_TIMEOUT = 1.0
POLL_INTERVAL = 0.002
LOAD_POLL_INTERVAL = 0.010
RELOAD_BOUND = 10.0
BETWEEN_SAVES = 0.3
SETTLE_AFTER_READY = 1.0
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
LOAD_TIMEOUT = 2.0
STALL_THRESHOLD = 1.0
LOAD_MAX_REQUESTS = 500_000
LOAD_START_TIMEOUT = 5.0
MAX_RESPONSE_BYTES = 65_536
RELOADED_RE = re.compile(r"reloaded in (\d+) ms \[(\w+)\]")


class BenchError(RuntimeError):
    """A measurement could not be taken (server died, not ready in time...)."""


@dataclass
class LoadResult:
    """What the keep-alive load thread saw during the reloads."""

    requests: int = 0
    ok: int = 0
    failed: int = 0
    stalled: int = 0
    max_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class RunResult:
    """All figures of one server run (one server, one app, one fresh project)."""

    server: str
    app: str
    latencies_ms: list[float]
    missed: int
    load: LoadResult
    load_latencies_ms: list[float]
    load_missed: int
    strategies: dict[str, int]
    reported_ms: list[int]
    leftover_processes: int

    def summary(self) -> dict[str, float | None]:
        """Return min/p50/p90 of the save-to-new-response latencies (ms)."""
        return summarize(self.latencies_ms)


def summarize(values: list[float]) -> dict[str, float | None]:
    """Return min, p50 and p90 (inclusive method) of ``values``, or Nones when empty."""
    if not values:
        return {"min": None, "p50": None, "p90": None}
    if len(values) == 1:
        return {"min": values[0], "p50": values[0], "p90": values[0]}
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return {"min": min(values), "p50": statistics.median(values), "p90": deciles[8]}


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago (bind port 0, then close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def make_project(app: str, root: Path) -> Path:
    """Copy the ``app`` template's modules into ``root`` and return ``root``."""
    template = BENCH_DIR / "apps" / APPS[app][0]
    for source in sorted(template.glob("*.py")):
        shutil.copyfile(source, root / source.name)
    write_version(root, "v0")
    return root


def write_version(project: Path, version: str) -> None:
    """Rewrite ``version.py`` in place (one write, as an editor saving the file)."""
    text = f'"""Rewritten by bench/reload.py."""\n\nVERSION = "{version}"\n'
    (project / VERSION_FILE).write_text(text)


def server_argv(name: str, app: str, project: Path, port: int) -> list[str]:
    """Return the command line that serves ``app`` from ``project`` with reload on."""
    _, target, lifespan = APPS[app]
    common = [
        target,
        "--app-dir",
        str(project),
        "--host",
        HOST,
        "--port",
        str(port),
        "--reload",
        "--reload-dir",
        str(project),
        "--no-access-log",
        "--lifespan",
        lifespan,
    ]
    if name == "devserve":
        return [sys.executable, "-m", "devserve", *common]
    if name == "uvicorn":
        return [sys.executable, "-m", "uvicorn", *common, "--http", "h11", "--loop", "uvloop"]
    raise ValueError(f"unknown server {name!r}")


def session_pids(sid: int) -> list[int]:
    """Return the pids of live (non-zombie) processes whose session id is ``sid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (in parentheses): state ppid pgrp session ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def stop_server(proc: subprocess.Popen[bytes]) -> int:
    """Stop ``proc``'s session: SIGINT to the group, 5 s, SIGKILL; return leftovers found.

    The return value counts processes of the session still alive after the leader exited
    (they are then SIGKILLed, and checked once more).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)
    deadline = time.monotonic() + STOP_TIMEOUT
    leftovers = session_pids(proc.pid)
    found = len(leftovers)
    while leftovers and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)
        leftovers = session_pids(proc.pid)
    if leftovers:
        raise BenchError(f"processes left after stopping the server: {leftovers}")
    return found


@dataclass
class _Server:
    """A running server process and, once stopped, how many stragglers it left."""

    proc: subprocess.Popen[bytes]
    leftovers: int = 0


@contextlib.contextmanager
def running_server(argv: list[str], project: Path, log: IO[str]) -> Iterator[_Server]:
    """Spawn ``argv`` pinned to SERVER_CPU in its own session in ``project``; always stop it."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}
    proc = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *argv],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    server = _Server(proc)
    try:
        yield server
    finally:
        server.leftovers = stop_server(proc)


def fetch(port: int) -> tuple[int, bytes] | None:
    """GET PATH on a new connection (1 s timeouts); return (status, body) or None on error."""
    try:
        with socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT) as sock:
            sock.settimeout(SOCKET_TIMEOUT)
            sock.sendall(
                f"GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            for _ in range(64):
                chunk = sock.recv(MAX_RESPONSE_BYTES)
                if not chunk:
                    break
                data += chunk
                if len(data) >= MAX_RESPONSE_BYTES:
                    break
    except OSError:
        return None
    head, sep, body = data.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    if not sep or len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1]), body


def wait_for_version(port: int, version: str, started: float, interval: float) -> float | None:
    """Poll until GET PATH answers 200 ``version``; return seconds since ``started`` or None."""
    expected = version.encode()
    deadline = started + RELOAD_BOUND
    for _ in range(int(RELOAD_BOUND / interval) + 1):
        answer = fetch(port)
        now = time.perf_counter()
        if answer is not None and answer == (200, expected):
            return now - started
        if now >= deadline:
            return None
        time.sleep(interval)
    return None


def wait_ready(server: _Server, port: int, log: IO[str]) -> None:
    """Wait until the server answers 200 "v0", or raise BenchError."""
    deadline = time.monotonic() + READY_TIMEOUT
    for _ in range(int(READY_TIMEOUT / 0.01) + 1):
        if server.proc.poll() is not None:
            raise BenchError(f"server exited with {server.proc.returncode}: {tail(log)}")
        if fetch(port) == (200, b"v0"):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    raise BenchError(f"server not serving v0 within {READY_TIMEOUT:.0f} s: {tail(log)}")


def tail(log: IO[str]) -> str:
    """Return the last lines a server wrote to its log, for error messages."""
    log.flush()
    text = Path(log.name).read_text(errors="replace")
    return " | ".join(text.strip().splitlines()[-6:]) or "(no output)"


def measure_saves(
    port: int, project: Path, first: int, count: int, interval: float
) -> tuple[list[float], int]:
    """Perform ``count`` saves from version ``first``; return latencies (ms) and misses."""
    latencies: list[float] = []
    missed = 0
    for number in range(first, first + count):
        version = f"v{number}"
        started = time.perf_counter()
        write_version(project, version)
        seconds = wait_for_version(port, version, started, interval)
        if seconds is None:
            missed += 1
        else:
            latencies.append(seconds * 1000.0)
        time.sleep(BETWEEN_SAVES)
    return latencies, missed


def load_loop(port: int, stop: threading.Event, started: threading.Event, out: LoadResult) -> None:
    """Send sequential keep-alive GETs until ``stop`` (bounded by count); fill ``out``."""
    errors: Counter[str] = Counter()
    with httpx.Client(base_url=f"http://{HOST}:{port}", timeout=LOAD_TIMEOUT) as client:
        for _ in range(LOAD_MAX_REQUESTS):
            if stop.is_set():
                break
            begin = time.perf_counter()
            try:
                response = client.get(PATH)
                status: int | None = response.status_code
            except httpx.HTTPError as exc:
                status = None
                errors[type(exc).__name__] += 1
            elapsed = time.perf_counter() - begin
            out.requests += 1
            out.max_ms = max(out.max_ms, elapsed * 1000.0)
            if status is None:
                out.failed += 1
            elif status != 200:
                out.failed += 1
                errors[f"HTTP {status}"] += 1
            else:
                out.ok += 1
                out.stalled += elapsed > STALL_THRESHOLD
            started.set()
    out.errors = dict(errors)


def measure_under_load(
    port: int, project: Path, first: int, count: int
) -> tuple[LoadResult, list[float], int]:
    """Run the keep-alive load thread during ``count`` saves; return its result and latencies."""
    result = LoadResult()
    stop, started = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=load_loop, args=(port, stop, started, result), name="load", daemon=True
    )
    thread.start()
    try:
        if not started.wait(LOAD_START_TIMEOUT):
            raise BenchError("load thread sent no request within 5 s")
        time.sleep(BETWEEN_SAVES)
        latencies, missed = measure_saves(port, project, first, count, LOAD_POLL_INTERVAL)
    finally:
        stop.set()
        thread.join(LOAD_TIMEOUT * 3)
    if thread.is_alive():
        raise BenchError("load thread did not stop")
    return result, latencies, missed


def parse_reload_lines(log: IO[str]) -> tuple[dict[str, int], list[int]]:
    """Count devserve's ``reloaded in N ms [strategy]`` lines; return strategies and N values."""
    log.flush()
    text = Path(log.name).read_text(errors="replace")
    matches = RELOADED_RE.findall(text)
    return dict(Counter(strategy for _, strategy in matches)), [int(ms) for ms, _ in matches]


def server_run(name: str, app: str, saves: int, under_load: int) -> RunResult:
    """Start ``name`` on a fresh copy of ``app`` and take both measurements."""
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix=f"reload-bench-{name}-{app}-") as tmp,
        tempfile.NamedTemporaryFile("w+", prefix=f"reload-bench-{name}-", suffix=".log") as log,
    ):
        project = make_project(app, Path(tmp))
        argv = server_argv(name, app, project, port)
        with running_server(argv, project, log) as server:
            wait_ready(server, port, log)
            time.sleep(SETTLE_AFTER_READY)  # let the watcher finish its start-up scan
            latencies, missed = measure_saves(port, project, 1, saves, POLL_INTERVAL)
            load, load_latencies, load_missed = measure_under_load(
                port, project, saves + 1, under_load
            )
            if server.proc.poll() is not None:
                raise BenchError(f"server died during the run: {tail(log)}")
        strategies, reported = parse_reload_lines(log)
    return RunResult(
        server=name,
        app=app,
        latencies_ms=latencies,
        missed=missed,
        load=load,
        load_latencies_ms=load_latencies,
        load_missed=load_missed,
        strategies=strategies,
        reported_ms=reported,
        leftover_processes=server.leftovers,
    )


def fmt(value: float | None) -> str:
    """Format milliseconds, or a dash for a missing value."""
    return "-" if value is None else f"{value:.0f}"


def table(results: list[RunResult]) -> list[str]:
    """Return the results table and the uvicorn/devserve p50 ratios as Markdown lines."""
    lines = [
        "| server | app | min ms | p50 ms | p90 ms | missed | requests under load "
        "| failed | stalled >1 s | max ms under load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        s = res.summary()
        lines.append(
            f"| {res.server} | {res.app} | {fmt(s['min'])} | {fmt(s['p50'])} | {fmt(s['p90'])}"
            f" | {res.missed} | {res.load.requests} | {res.load.failed} | {res.load.stalled}"
            f" | {res.load.max_ms:.0f} |"
        )
    lines.append("")
    for app in APPS:
        p50 = {r.server: r.summary()["p50"] for r in results if r.app == app}
        dev, uvi = p50.get("devserve"), p50.get("uvicorn")
        if dev and uvi:
            lines.append(f"- {app}: uvicorn/devserve p50 = {uvi:.0f}/{dev:.0f} = {uvi / dev:.2f}")
    return lines


def details(results: list[RunResult]) -> list[str]:
    """Return per-run detail lines: error kinds, latencies under load, devserve log lines."""
    lines = []
    for res in results:
        under = summarize(res.load_latencies_ms)
        text = (
            f"- {res.server}/{res.app}: errors {res.load.errors or '{}'}; save-to-new-version"
            f" while loaded p50 {fmt(under['p50'])} ms (missed {res.load_missed});"
            f" leftover processes after stop {res.leftover_processes}"
        )
        if res.server == "devserve":
            reported = statistics.median(res.reported_ms) if res.reported_ms else None
            text += (
                f"; 'reloaded in' lines {sum(res.strategies.values())} {res.strategies},"
                f" median reported {fmt(reported)} ms"
            )
        lines.append(text)
    return lines


def git_state() -> dict[str, str]:
    """Return the HEAD commit and the dirty files under devserve/ (devserve is editable)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(BENCH_DIR.parent), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "devserve").splitlines()
    return {"head": git("rev-parse", "--short", "HEAD"), "dirty_devserve": ", ".join(dirty)}


def environment() -> dict[str, Any]:
    """Describe the machine and the versions under test."""
    return {
        **git_state(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        **{
            pkg: importlib.metadata.version(pkg)
            for pkg in ("devserve", "uvicorn", "watchfiles", "fastapi", "pydantic", "httpx")
        },
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=15, help="saves timed per server and app")
    parser.add_argument(
        "--reloads-under-load", type=int, default=10, help="saves during the keep-alive load"
    )
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    args = parser.parse_args(argv)
    for name in ("saves", "reloads_under_load"):
        if not 1 <= getattr(args, name) <= 500:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 500")
    return args


def check_prerequisites() -> None:
    """Fail early without taskset or CPUs 0 and 1; pin this process to CLIENT_CPU."""
    if shutil.which("taskset") is None:
        raise BenchError("taskset is missing")
    if not {0, CLIENT_CPU} <= os.sched_getaffinity(0):
        raise BenchError("needs CPUs 0 and 1 (servers on 0, this script on 1)")
    os.sched_setaffinity(0, {CLIENT_CPU})


def main(argv: list[str] | None = None) -> int:
    """Run every server x app combination and print the table (or JSON with --json)."""
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_system_exit)
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    results: list[RunResult] = []
    try:
        check_prerequisites()
        env = environment()
        say(
            f"devserve {env['devserve']} vs uvicorn {env['uvicorn']};"
            f" loadavg {env['loadavg_start']}"
        )
        started = time.monotonic()
        for app in APPS:
            for name in SERVERS:
                say(
                    f"== {name} / {app}: {args.saves} saves,"
                    f" then {args.reloads_under_load} under load"
                )
                res = server_run(name, app, args.saves, args.reloads_under_load)
                say("   " + " ".join(f"{ms:.0f}" for ms in res.latencies_ms))
                results.append(res)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    env["loadavg_end"] = os.getloadavg()
    elapsed = round(time.monotonic() - started, 1)
    for line in [*table(results), "", *details(results)]:
        say(line)
    say(f"devserve tree: HEAD {env['head']}, dirty: {env['dirty_devserve'] or 'none'}")
    say(f"loadavg at end {env['loadavg_end']}, elapsed {elapsed} s")
    if args.json:
        report: dict[str, Any] = {
            "command": " ".join(["python", "bench/reload.py", *sys.argv[1:]]),
            "environment": env,
            "elapsed_s": elapsed,
            "runs": [{**asdict(r), "summary_ms": r.summary()} for r in results],
        }
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
