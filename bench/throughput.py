"""Throughput, cold start and idle RSS: devserve against uvicorn (h11, uvloop), in one run.

Usage::

    python bench/throughput.py [--rounds N] [--duration S] [--cold-runs N] [--json]
    python bench/throughput.py --reload [...]   # both servers under --reload (no RSS)

Three measurements, every one interleaved between the two servers so that the noise of a
shared machine falls on both alike:

1. Hello-world throughput with ``wrk -t1 -c32 -d<S>s --latency``: the server pinned to CPU 0
   and wrk to CPU 1 (``taskset``). Each round starts a fresh server, warms it up with a 1 s
   wrk run, then measures. Rounds go devserve, uvicorn, devserve, uvicorn, ... and the
   script prints each round, the median requests/s and p99 per server, and the median of
   the per-round ratios devserve/uvicorn.
2. Cold start: the time from spawning the process to the first 200 response (the port is
   polled with short-timeout connects and a GET, bounded by 10 s); median of N runs each.
3. RSS (``VmRSS`` of the server process): idle after start, then after 10,000 requests.

Both servers serve ``bench/apps/hello.py`` with no access log and lifespan off; uvicorn
runs with ``--http h11 --loop uvloop`` (devserve always speaks h11 and picks uvloop under
its default ``--loop auto``). Both are started as ``python -m <server>`` from this
interpreter, so neither pays for a console-script shim. Servers listen on 127.0.0.1 only,
on a free port found by binding port 0 (racy, acceptable for a bench), in their own
session, and are always killed (SIGTERM, 5 s, SIGKILL) when a measurement ends.

Each throughput round also reads the CPU time (user + system) of the server's whole
process group over the measured run, per request: with ``--reload`` that is the
supervisor, the fork server and the worker for devserve, the reloader and the worker for
uvicorn (both watch ``bench/apps`` only; devserve with ``--ui plain``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
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
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
APP_DIR = BENCH_DIR / "apps"
APP = "hello:app"
HOST = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = "1"
WRK_THREADS = 1
WRK_CONNECTIONS = 32
WARMUP_SECONDS = 1
READY_TIMEOUT = 10.0
POLL_CONNECT_TIMEOUT = 0.1
POLL_INTERVAL = 0.005
MAX_POLLS = 5_000
STOP_TIMEOUT = 5.0
RSS_REQUESTS = 10_000
RSS_DEADLINE = 120.0
RSS_SETTLE = 0.5
REQUEST_TIMEOUT = 5.0
SERVERS = ("devserve", "uvicorn")
#: Cold starts run pinned to SERVER_CPU like everything else, unless `main` is told
#: ``--cold-unpinned`` (a supervisor and the processes it starts may then use both cores,
#: as they would on a developer's machine).
COLD_PINNED = [True]
#: Extra arguments per server, set once by `main` (``--reload``).
MODE_ARGS: dict[str, list[str]] = {name: [] for name in SERVERS}
RELOAD_ARGS = {
    "devserve": ["--reload", "--reload-dir", str(APP_DIR), "--ui", "plain"],
    "uvicorn": ["--reload", "--reload-dir", str(APP_DIR)],
}
UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


class BenchError(RuntimeError):
    """A measurement could not be taken (server died, not ready in time, wrk failed...)."""


@dataclass
class WrkResult:
    """One wrk run: requests/s, p99 latency and the error counts wrk reports.

    ``cpu_us_per_request`` is the server's own CPU time (user + system) over the run divided
    by the requests wrk completed: less sensitive than req/s to the other tenants of a
    shared machine, which take wall time but not the server's CPU time.
    """

    rps: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    requests: int = 0
    cpu_us_per_request: float | None = None


@dataclass
class RssSample:
    """VmRSS of one server start, idle after start and after RSS_REQUESTS requests."""

    server: str
    idle_kib: int
    after_kib: int
    requests: int
    failures: int


def server_argv(name: str, port: int) -> list[str]:
    """Return the command line that serves the bench app with server ``name`` on ``port``."""
    common = [
        APP,
        "--app-dir",
        str(APP_DIR),
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--lifespan",
        "off",
    ]
    common += MODE_ARGS[name]
    if name == "devserve":
        return [sys.executable, "-m", "devserve", *common]
    if name == "uvicorn":
        return [sys.executable, "-m", "uvicorn", *common, "--http", "h11", "--loop", "uvloop"]
    raise ValueError(f"unknown server {name!r}")


def free_port() -> int:
    """Return a port that was free on 127.0.0.1 a moment ago (bind port 0, then close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc``'s whole session: SIGTERM, wait up to 5 s, then SIGKILL and reap."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; take any straggler of its group with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        return
    proc.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def running_server(
    name: str, port: int, log: IO[str], *, pinned: bool = True
) -> Iterator[subprocess.Popen[bytes]]:
    """Spawn server ``name`` (pinned to SERVER_CPU) in its own session; always stop it."""
    argv = [*(["taskset", "-c", SERVER_CPU] if pinned else []), *server_argv(name, port)]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
    )
    try:
        yield proc
    finally:
        stop_process(proc)


def probe(port: int) -> bool:
    """Return True when a GET / on ``port`` answers 200 (one short-timeout attempt)."""
    try:
        with socket.create_connection((HOST, port), timeout=POLL_CONNECT_TIMEOUT) as sock:
            sock.settimeout(REQUEST_TIMEOUT)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            head = sock.recv(64)
    except OSError:
        return False
    return head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 "))


def wait_ready(proc: subprocess.Popen[bytes], port: int, started: float, log: IO[str]) -> float:
    """Poll ``port`` until it answers 200; return seconds since ``started`` (perf_counter)."""
    deadline = started + READY_TIMEOUT
    for _ in range(MAX_POLLS):
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode}: {read_log(log)}")
        if probe(port):
            return time.perf_counter() - started
        if time.perf_counter() >= deadline:
            break
        time.sleep(POLL_INTERVAL)
    raise BenchError(f"server not answering 200 within {READY_TIMEOUT:.0f} s: {read_log(log)}")


def read_log(log: IO[str]) -> str:
    """Return the last lines a server wrote to its log file, for error messages."""
    log.flush()
    text = Path(log.name).read_text(errors="replace")
    return " | ".join(text.strip().splitlines()[-5:]) or "(no output)"


def parse_wrk(output: str) -> WrkResult:
    """Extract requests/s, the p99 latency (ms) and error counts from wrk's output."""
    rps = re.search(r"Requests/sec:\s*([\d.]+)", output)
    requests = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    if rps is None or p99 is None:
        raise BenchError(f"cannot parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        rps=float(rps.group(1)),
        p99_ms=float(p99.group(1)) * UNIT_TO_MS[p99.group(2)],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        requests=int(requests.group(1)) if requests else 0,
    )


def run_wrk(port: int, duration: int) -> WrkResult:
    """Run wrk pinned to CLIENT_CPU against ``port`` for ``duration`` seconds."""
    argv = [
        "taskset",
        "-c",
        CLIENT_CPU,
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{duration}s",
        "--latency",
        f"http://{HOST}:{port}/",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds so far of the live processes in process group ``pgid``."""
    ticks = 0
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def vm_rss_kib(pid: int) -> int:
    """Return VmRSS of ``pid`` in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def send_requests(port: int, count: int) -> tuple[int, int]:
    """Send ``count`` keep-alive GETs (bounded by RSS_DEADLINE); return (sent, failures)."""
    deadline = time.monotonic() + RSS_DEADLINE
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    sent = failures = 0
    try:
        for _ in range(count):
            if time.monotonic() >= deadline:
                break
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                failures += response.status != 200
            except (OSError, http.client.HTTPException):
                failures += 1
                conn.close()  # reconnects on the next request
            sent += 1
    finally:
        conn.close()
    return sent, failures


def with_server(
    name: str, body: Callable[[subprocess.Popen[bytes], int, float], Any], *, pinned: bool = True
) -> Any:
    """Start ``name`` on a free port, wait for its first 200, run ``body``, always stop it.

    ``body`` gets the process, the port and the cold-start time in seconds.
    """
    port = free_port()
    with tempfile.NamedTemporaryFile("w+", prefix=f"bench-{name}-", suffix=".log") as log:
        started = time.perf_counter()
        with running_server(name, port, log, pinned=pinned) as proc:
            ready = wait_ready(proc, port, started, log)
            return body(proc, port, ready)


def throughput_round(name: str, duration: int) -> WrkResult:
    """One throughput round on a fresh server: 1 s warm-up, then the measured wrk run."""

    def body(proc: subprocess.Popen[bytes], port: int, _ready: float) -> WrkResult:
        run_wrk(port, WARMUP_SECONDS)
        before = group_cpu_seconds(proc.pid)  # the server leads its own session and group
        result = run_wrk(port, duration)
        used = group_cpu_seconds(proc.pid) - before
        if result.requests:
            result.cpu_us_per_request = used * 1e6 / result.requests
        return result

    result: WrkResult = with_server(name, body)
    return result


def cold_start(name: str) -> float:
    """Return milliseconds from spawning server ``name`` to its first 200 response."""
    ready: float = with_server(name, lambda _proc, _port, ready: ready, pinned=COLD_PINNED[0])
    return ready * 1000.0


def rss_sample(name: str) -> RssSample:
    """Read VmRSS idle after start, then after RSS_REQUESTS sequential keep-alive requests."""

    def body(proc: subprocess.Popen[bytes], port: int, _ready: float) -> RssSample:
        time.sleep(RSS_SETTLE)
        idle = vm_rss_kib(proc.pid)
        sent, failures = send_requests(port, RSS_REQUESTS)
        time.sleep(RSS_SETTLE)
        return RssSample(name, idle, vm_rss_kib(proc.pid), sent, failures)

    sample: RssSample = with_server(name, body)
    return sample


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    """Return the median of a/b over ``pairs``."""
    return statistics.median(a / b for a, b in pairs)


def bench_throughput(rounds: int, duration: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Run ``rounds`` interleaved throughput rounds; return per-round figures and medians."""
    say(f"== throughput: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{duration}s, {rounds} rounds")
    per_round: list[dict[str, Any]] = []
    for index in range(1, rounds + 1):
        results = {name: throughput_round(name, duration) for name in SERVERS}
        for name, res in results.items():
            cpu = f"{res.cpu_us_per_request:6.1f}" if res.cpu_us_per_request else "     -"
            say(
                f"round {index} {name:<9} {res.rps:>10.0f} req/s  p99 {res.p99_ms:7.2f} ms"
                f"  CPU {cpu} us/req  non-2xx {res.non_2xx}  socket errors {res.socket_errors}"
            )
        per_round.append({name: asdict(res) for name, res in results.items()})
    keys = ("rps", "p99_ms", "cpu_us_per_request")
    medians = {
        name: {key: statistics.median(r[name][key] or 0.0 for r in per_round) for key in keys}
        for name in SERVERS
    }
    ratios = {
        key: median_ratio(
            [(r["devserve"][key] or 0.0, r["uvicorn"][key] or 1.0) for r in per_round]
        )
        for key in keys
    }
    for name in SERVERS:
        say(
            f"median {name:<9} {medians[name]['rps']:>9.0f} req/s"
            f"  p99 {medians[name]['p99_ms']:7.2f} ms"
            f"  CPU {medians[name]['cpu_us_per_request']:6.1f} us/req"
        )
    say(
        f"median per-round ratio devserve/uvicorn: req/s {ratios['rps']:.3f}"
        f"  p99 {ratios['p99_ms']:.3f}  CPU per request {ratios['cpu_us_per_request']:.3f}"
    )
    return {"rounds": per_round, "median": medians, "ratio_devserve_over_uvicorn": ratios}


def bench_cold_start(runs: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Time ``runs`` interleaved cold starts per server; return the runs and medians (ms)."""
    say(f"== cold start: spawn to first 200, {runs} runs each, interleaved")
    times: dict[str, list[float]] = {name: [] for name in SERVERS}
    for _ in range(runs):
        for name in SERVERS:
            times[name].append(cold_start(name))
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name in SERVERS:
        runs_text = " ".join(f"{t:.0f}" for t in times[name])
        say(f"{name:<9} median {medians[name]:6.1f} ms  (runs: {runs_text})")
    ratio = median_ratio(list(zip(times["devserve"], times["uvicorn"], strict=True)))
    say(f"median per-run ratio devserve/uvicorn: {ratio:.3f}")
    return {"runs_ms": times, "median_ms": medians, "ratio_devserve_over_uvicorn": ratio}


def bench_rss(runs: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Sample RSS ``runs`` times per server, interleaved; return the samples and medians."""
    say(f"== RSS: VmRSS idle after start and after {RSS_REQUESTS} requests, {runs} runs each")
    samples: list[RssSample] = []
    for _ in range(runs):
        for name in SERVERS:
            sample = rss_sample(name)
            samples.append(sample)
            say(
                f"{name:<9} idle {sample.idle_kib / 1024:6.1f} MiB  after "
                f"{sample.requests} requests {sample.after_kib / 1024:6.1f} MiB"
                f"  failures {sample.failures}"
            )
    medians = {
        name: {
            key: statistics.median(getattr(s, key) for s in samples if s.server == name)
            for key in ("idle_kib", "after_kib")
        }
        for name in SERVERS
    }
    for name in SERVERS:
        say(
            f"median {name:<9} idle {medians[name]['idle_kib'] / 1024:6.1f} MiB"
            f"  after {medians[name]['after_kib'] / 1024:6.1f} MiB"
        )
    return {"runs": [asdict(s) for s in samples], "median_kib": medians}


def tool_version(argv: list[str]) -> str:
    """Return the first output line of a ``--version``-style command."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else ""
    )


def environment() -> dict[str, Any]:
    """Describe the machine and the versions under test."""
    return {
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "devserve": importlib.metadata.version("devserve"),
        "uvicorn": importlib.metadata.version("uvicorn"),
        "uvloop": importlib.metadata.version("uvloop"),
        "h11": importlib.metadata.version("h11"),
        "wrk": tool_version(["wrk", "--version"]),
    }


def check_prerequisites() -> None:
    """Fail early when a tool is missing or the machine has fewer than two CPUs."""
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"missing tools: {', '.join(missing)}")
    if len(os.sched_getaffinity(0)) < 2:
        raise BenchError("needs CPUs 0 and 1 (server on 0, wrk on 1)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds per server")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--cold-runs", type=int, default=10, help="cold starts per server")
    parser.add_argument("--rss-runs", type=int, default=3, help="RSS samples per server")
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    parser.add_argument(
        "--reload", action="store_true", help="run both servers under --reload (skips RSS)"
    )
    parser.add_argument(
        "--cold-unpinned", action="store_true", help="cold starts may use every CPU"
    )
    args = parser.parse_args(argv)
    for name in ("rounds", "duration", "cold_runs", "rss_runs"):
        if not 1 <= getattr(args, name) <= 1000:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 1000")
    return args


def raise_system_exit(signum: int, _frame: object) -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so that every ``finally`` stops its server."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the three benchmarks and print the results (text, or JSON with --json)."""
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_system_exit)
    out = sys.stderr if args.json else sys.stdout
    if args.reload:
        MODE_ARGS.update(RELOAD_ARGS)
    COLD_PINNED[0] = not args.cold_unpinned

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        check_prerequisites()
        env = environment()
        say(f"devserve {env['devserve']} vs uvicorn {env['uvicorn']} (h11, uvloop)")
        say(f"cpus {env['cpus']}, loadavg {env['loadavg_start']}")
        started = time.monotonic()
        results: dict[str, Any] = {
            "command": " ".join(["python", "bench/throughput.py", *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%d"),
            "environment": env,
            "throughput": bench_throughput(args.rounds, args.duration, say),
            "cold_start": bench_cold_start(args.cold_runs, say),
            "rss": None if args.reload else bench_rss(args.rss_runs, say),
            "reload": args.reload,
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
