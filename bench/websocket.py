"""WebSocket echo: devserve (wsproto) against uvicorn ``--ws wsproto`` and ``--ws websockets``.

Usage::

    python bench/websocket.py [--rounds N] [--messages N] [--json]

Every server serves ``bench/apps/ws_echo.py`` (accept, echo text and bytes until disconnect)
with ``--loop uvloop --no-access-log --lifespan off`` on 127.0.0.1, on a free port found by
binding port 0 (racy, acceptable for a bench). devserve runs with ``--ws wsproto``, uvicorn
once with ``--ws wsproto`` and once with ``--ws websockets``; each is started as
``python -m <server>`` from this interpreter, pinned to CPU 0 with ``taskset``, in its own
session. Readiness is a real WebSocket handshake (raw socket, ``101`` expected, then a close
frame), polled for at most 10 s. Each server is always stopped in ``finally``: SIGTERM to
its process group, 5 s, SIGKILL to the group; the script then checks that no process of that
session is left.

For each (round, server) a fresh server is started and a separate client process runs
pinned to CPU 1 (this script re-invoked with a hidden ``--client-port``; it uses the
``websockets`` asyncio client on uvloop, with the client's default ``permessage-deflate``
offer, which all three servers accept by default). The client:

1. opens 8 connections and, on each concurrently, does sequential echo round trips of a
   64-byte text message (send, then wait for the echo, which is checked): 100 warm-up round
   trips per connection, then the measured phase of N round trips in total (default 20,000,
   split evenly). It reports round trips per second (N / wall time of the measured phase)
   and the p50/p99 of the per-message round-trip latencies;
2. echoes a 1 MiB random binary message on one connection (one warm-up, then 10 timed);
   it reports the median time.

The client is also told the server's session id and reads the CPU time (user + system,
from ``/proc/<pid>/stat``) of every process in that session just before and just after the
measured phase: *server CPU per round trip* (µs) is that difference divided by N. On a
shared machine it is steadier than msg/s, which also counts time the server spent waiting
for a core.

``--base-tree DIR`` adds a fourth server, ``devserve-base``: the same devserve command run
from DIR with ``PYTHONPATH=DIR``, so a checkout of another revision (e.g. made with ``git
archive main | tar -x -C DIR``) is measured in the same rounds as the working tree.

Rounds (default 3) interleave the servers, rotating their order each round. The script
prints per-round figures, per-server medians and the median of the per-round ratios
devserve / uvicorn-wsproto and devserve / uvicorn-websockets. Every wait is bounded in count
and time; nothing listens on or connects to anything but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.metadata
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from throughput import raise_system_exit  # bench/ is on sys.path when run
from websockets.asyncio.client import ClientConnection, connect

BENCH_DIR = Path(__file__).resolve().parent
APP_DIR = BENCH_DIR / "apps"
APP = "ws_echo:app"
HOST = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = "1"
SERVERS = ("devserve", "uvicorn-wsproto", "uvicorn-websockets")
BASELINES = ("uvicorn-wsproto", "uvicorn-websockets")
BASE_TREE_SERVER = "devserve-base"
CONNECTIONS = 8
TEXT_SIZE = 64
WARMUP_PER_CONNECTION = 100
BIG_SIZE = 1 << 20
BIG_RUNS = 10
CLIENT_MAX_SIZE = 4 * BIG_SIZE
CLIENT_DEADLINE = 300.0
CLIENT_EXTRA_TIMEOUT = 30.0
READY_TIMEOUT = 10.0
POLL_INTERVAL = 0.01
MAX_POLLS = 1_000
PROBE_TIMEOUT = 0.5
STOP_TIMEOUT = 5.0
LEFTOVER_CHECKS = 100
MAX_ROUNDS = 50
MAX_MESSAGES = 10_000_000
METRICS = ("msgs_per_s", "p50_ms", "p99_ms", "big_ms", "server_cpu_us")


class BenchError(RuntimeError):
    """A measurement could not be taken (server died, not ready in time, client failed...)."""


# --------------------------------------------------------------------------- client side


def text_message(conn: int, index: int) -> str:
    """Return the 64-byte text message number ``index`` of connection ``conn``."""
    return f"{conn:02d}:{index:09d}:".ljust(TEXT_SIZE, "x")


async def echo_loop(ws: ClientConnection, conn: int, count: int, latencies: list[int]) -> int:
    """Do ``count`` sequential text round trips; append each latency (ns); return mismatches."""
    mismatches = 0
    clock = time.perf_counter_ns
    for index in range(count):
        message = text_message(conn, index)
        started = clock()
        await ws.send(message)
        reply = await ws.recv()
        latencies.append(clock() - started)
        mismatches += reply != message
    return mismatches


async def big_echoes(ws: ClientConnection) -> tuple[list[float], int]:
    """Echo a 1 MiB random binary message once untimed, then BIG_RUNS times; return ms."""
    payload = os.urandom(BIG_SIZE)
    times: list[float] = []
    mismatches = 0
    for run in range(BIG_RUNS + 1):
        started = time.perf_counter()
        await ws.send(payload)
        reply = await ws.recv()
        elapsed = (time.perf_counter() - started) * 1000.0
        mismatches += reply != payload
        if run:  # run 0 is the warm-up
            times.append(elapsed)
    return times, mismatches


def session_cpu_s(sid: int) -> float:
    """Return the CPU time (user + system, seconds) used so far by session ``sid``'s processes.

    ``sid`` 0 (the client run by hand, without ``--server-session``) counts nothing.
    """
    if sid <= 0:
        return 0.0
    ticks = 0
    for pid in session_pids(sid):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


async def client_session(port: int, messages: int, server_sid: int) -> dict[str, Any]:
    """Run the echo and 1 MiB measurements against ``port``; return the figures."""
    uri = f"ws://{HOST}:{port}/"
    async with contextlib.AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(connect(uri, proxy=None, max_size=CLIENT_MAX_SIZE))
            for _ in range(CONNECTIONS)
        ]
        counts = [
            messages // CONNECTIONS + (i < messages % CONNECTIONS) for i in range(CONNECTIONS)
        ]
        scratch: list[int] = []
        await asyncio.gather(
            *(echo_loop(ws, i, WARMUP_PER_CONNECTION, scratch) for i, ws in enumerate(sockets))
        )
        latencies: list[list[int]] = [[] for _ in sockets]
        cpu_before = session_cpu_s(server_sid)
        started = time.perf_counter()
        mismatches = await asyncio.gather(
            *(echo_loop(ws, i, counts[i], latencies[i]) for i, ws in enumerate(sockets))
        )
        elapsed = time.perf_counter() - started
        server_cpu_s = session_cpu_s(server_sid) - cpu_before
        big_ms, big_mismatches = await big_echoes(sockets[0])
        extensions = sockets[0].response.headers.get("Sec-WebSocket-Extensions", "")
    flat = sorted(ns / 1e6 for per_conn in latencies for ns in per_conn)
    return {
        "messages": len(flat),
        "elapsed_s": elapsed,
        "msgs_per_s": len(flat) / elapsed,
        "p50_ms": statistics.median(flat),
        "p99_ms": statistics.quantiles(flat, n=100, method="inclusive")[98],
        "big_ms": statistics.median(big_ms),
        "big_runs_ms": big_ms,
        "server_cpu_us": server_cpu_s / len(flat) * 1e6,
        "mismatches": sum(mismatches) + big_mismatches,
        "extensions": extensions,
    }


def client_main(port: int, messages: int, server_sid: int) -> int:
    """Entry point of the client process: measure, print one JSON object on stdout."""
    try:
        import uvloop  # noqa: PLC0415 - optional, the client falls back to asyncio

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(client_session(port, messages, server_sid), CLIENT_DEADLINE)

    print(json.dumps(runner(bounded())))
    return 0


# --------------------------------------------------------------------------- server side


def server_argv(name: str, port: int) -> list[str]:
    """Return the command line that serves the echo app with server ``name`` on ``port``."""
    common = [
        APP,
        "--app-dir",
        str(APP_DIR),
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--no-access-log",
        "--lifespan",
        "off",
    ]
    if name in ("devserve", BASE_TREE_SERVER):
        return [sys.executable, "-m", "devserve", *common, "--ws", "wsproto"]
    if name in BASELINES:
        ws = name.removeprefix("uvicorn-")
        return [sys.executable, "-m", "uvicorn", *common, "--http", "h11", "--ws", ws]
    raise ValueError(f"unknown server {name!r}")


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago (bind port 0, then close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


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
    """Stop ``proc``'s session: SIGTERM, 5 s, SIGKILL to the group; return leftovers seen.

    Processes of the session still alive after the leader exited are SIGKILLed and counted;
    a BenchError is raised if any survives that.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)
    leftovers = session_pids(proc.pid)
    found = len(leftovers)
    for _ in range(LEFTOVER_CHECKS):
        if not leftovers:
            return found
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.05)
        leftovers = session_pids(proc.pid)
    raise BenchError(f"processes left after stopping the server: {leftovers}")


@contextlib.contextmanager
def running_server(
    name: str, port: int, log: IO[str], base_tree: Path | None = None
) -> Iterator[dict[str, int]]:
    """Spawn ``name`` pinned to SERVER_CPU in its own session; always stop it.

    Yields a dict whose ``leftovers`` entry is filled in once the server is stopped.
    """
    argv = ["taskset", "-c", SERVER_CPU, *server_argv(name, port)]
    env = {**os.environ, "NO_COLOR": "1"}
    cwd = None
    if name == BASE_TREE_SERVER and base_tree is not None:
        env["PYTHONPATH"] = str(base_tree)
        cwd = base_tree  # ``python -m`` puts the working directory first on sys.path
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    state = {"pid": proc.pid, "leftovers": 0}
    try:
        wait_ready(proc, port, log)
        yield state
    finally:
        state["leftovers"] = stop_server(proc)


def handshake(port: int) -> bool:
    """Return True when a WebSocket handshake on ``port`` gets a 101 (one short attempt)."""
    key = base64.b64encode(os.urandom(16))
    request = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        with socket.create_connection((HOST, port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(request)
            head = sock.recv(4096)
            if not head.startswith(b"HTTP/1.1 101"):
                return False
            sock.sendall(b"\x88\x80\x00\x00\x00\x00")  # masked close frame, empty payload
            with contextlib.suppress(OSError):
                sock.recv(64)  # the server's close frame
    except OSError:
        return False
    return True


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: IO[str]) -> None:
    """Poll ``port`` with WebSocket handshakes until one succeeds (bounded by READY_TIMEOUT)."""
    deadline = time.monotonic() + READY_TIMEOUT
    for _ in range(MAX_POLLS):
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}: {read_log(log)}")
        if handshake(port):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL)
    raise BenchError(f"no WebSocket handshake within {READY_TIMEOUT:.0f} s: {read_log(log)}")


def read_log(log: IO[str], lines: int = 5) -> str:
    """Return the last lines a server wrote to its log file, for error messages."""
    log.flush()
    text = Path(log.name).read_text(errors="replace")
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


def error_lines(log: IO[str]) -> int:
    """Count log lines that look like errors (tracebacks, ERROR level)."""
    log.flush()
    text = Path(log.name).read_text(errors="replace")
    return sum("Traceback" in line or "ERROR" in line for line in text.splitlines())


def run_client(port: int, messages: int, server_sid: int) -> dict[str, Any]:
    """Run the client process pinned to CLIENT_CPU against ``port``; return its figures."""
    argv = [
        "taskset",
        "-c",
        CLIENT_CPU,
        sys.executable,
        str(Path(__file__).resolve()),
        "--client-port",
        str(port),
        "--messages",
        str(messages),
        "--server-session",
        str(server_sid),
    ]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=CLIENT_DEADLINE + CLIENT_EXTRA_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"client did not finish within {exc.timeout:.0f} s") from exc
    if done.returncode != 0:
        raise BenchError(f"client failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(name: str, messages: int, base_tree: Path | None = None) -> dict[str, Any]:
    """Start a fresh ``name`` server, run the client against it, stop it; return figures."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w+", prefix=f"bench-ws-{name}-", suffix=".log") as log:
        with running_server(name, port, log, base_tree) as state:
            result = run_client(port, messages, state["pid"])
        result["server_error_lines"] = error_lines(log)
    result["leftover_processes"] = state["leftovers"]
    if result["mismatches"]:
        raise BenchError(f"{name}: {result['mismatches']} echoes did not match what was sent")
    return result


# --------------------------------------------------------------------------- reporting


def bench(
    rounds: int, messages: int, say: Callable[[str], None], base_tree: Path | None = None
) -> dict[str, Any]:
    """Run ``rounds`` rounds over all servers (order rotated each round); return the figures."""
    say(
        f"== {CONNECTIONS} connections x sequential {TEXT_SIZE}-byte text echoes, "
        f"{messages} round trips in total; 1 MiB binary echo, median of {BIG_RUNS}"
    )
    servers = (*SERVERS, BASE_TREE_SERVER) if base_tree is not None else SERVERS
    baselines = (*BASELINES, BASE_TREE_SERVER) if base_tree is not None else BASELINES
    per_round: list[dict[str, dict[str, Any]]] = []
    for index in range(rounds):
        order = servers[index % len(servers) :] + servers[: index % len(servers)]
        results = {name: measure(name, messages, base_tree) for name in order}
        for name in servers:
            res = results[name]
            say(
                f"round {index + 1} {name:<18} {res['msgs_per_s']:>8.0f} msg/s"
                f"  p50 {res['p50_ms']:6.3f} ms  p99 {res['p99_ms']:6.3f} ms"
                f"  1 MiB {res['big_ms']:7.2f} ms  CPU {res['server_cpu_us']:6.1f} us/msg"
                f"  [{res['extensions'] or 'no extension'}]"
                f"  error lines {res['server_error_lines']}  leftovers"
                f" {res['leftover_processes']}"
            )
        per_round.append(results)
    medians = {
        name: {key: statistics.median(r[name][key] for r in per_round) for key in METRICS}
        for name in servers
    }
    ratios = {
        base: {
            key: statistics.median(r["devserve"][key] / r[base][key] for r in per_round)
            for key in METRICS
        }
        for base in baselines
    }
    for name in servers:
        med = medians[name]
        say(
            f"median {name:<18} {med['msgs_per_s']:>9.0f} msg/s  p50 {med['p50_ms']:6.3f} ms"
            f"  p99 {med['p99_ms']:6.3f} ms  1 MiB {med['big_ms']:7.2f} ms"
            f"  server CPU {med['server_cpu_us']:6.1f} us/msg"
        )
    for base, ratio in ratios.items():
        say(
            f"median per-round ratio devserve/{base}: msg/s {ratio['msgs_per_s']:.3f}"
            f"  p50 {ratio['p50_ms']:.3f}  p99 {ratio['p99_ms']:.3f}"
            f"  1 MiB {ratio['big_ms']:.3f}  server CPU/msg {ratio['server_cpu_us']:.3f}"
        )
    return {"rounds": per_round, "median": medians, "ratio_devserve_over": ratios}


def environment() -> dict[str, Any]:
    """Describe the machine and the versions under test."""
    packages = ("devserve", "uvicorn", "websockets", "wsproto", "uvloop")
    return {
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        **{name: importlib.metadata.version(name) for name in packages},
    }


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """Return an argparse type accepting integers in [low, high]."""

    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=bounded_int(1, MAX_ROUNDS), default=3)
    parser.add_argument(
        "--messages",
        type=bounded_int(CONNECTIONS, MAX_MESSAGES),
        default=20_000,
        help="round trips in total over the 8 connections (default 20000)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--base-tree",
        type=Path,
        help="also measure devserve imported from this directory (another revision)",
    )
    parser.add_argument("--client-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-session", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print the results (text, or JSON with --json)."""
    args = parse_args(argv)
    if args.client_port is not None:
        return client_main(args.client_port, args.messages, args.server_session)
    if args.base_tree is not None:
        args.base_tree = args.base_tree.resolve()
        if not (args.base_tree / "devserve" / "__init__.py").is_file():
            print(f"bench: no devserve package in {args.base_tree}", file=sys.stderr)
            return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_system_exit)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {int(CLIENT_CPU)})  # keep this script off the server's core
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    env = environment()
    say(
        f"devserve {env['devserve']} vs uvicorn {env['uvicorn']} (uvloop {env['uvloop']},"
        f" wsproto {env['wsproto']}, websockets {env['websockets']})"
    )
    say(f"cpus {env['cpus']}, loadavg {env['loadavg_start']}")
    started = time.monotonic()
    try:
        results: dict[str, Any] = {
            "command": " ".join(["python", "bench/websocket.py", *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%d"),
            "environment": env,
            **bench(args.rounds, args.messages, say, args.base_tree),
        }
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    env["loadavg_end"] = os.getloadavg()
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    say(f"loadavg at end {env['loadavg_end']}, elapsed {results['elapsed_s']} s")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
