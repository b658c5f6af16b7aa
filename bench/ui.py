"""What the live dashboard costs: hello-world req/s with ``--ui tui`` against plain output.

Usage::

    python bench/ui.py [--rounds N] [--duration S] [--json]
    python bench/ui.py --micro      # in-process: one frame, one event

Every round starts each configuration fresh, in an order that rotates from round to round
(so no configuration always runs first on a warm or cold machine), warms it up with a
1 s wrk run, then measures ``wrk -t1 -c32 -d<S>s --latency``. The server (supervisor,
fork server and worker: ``--reload``) is pinned to CPU 0, wrk and tmux to CPU 1.

- ``tui``: ``devserve --reload --ui tui`` in a real terminal, a private tmux server's
  120x40 pane (the dashboard draws 10 frames a second, the request log samples);
- ``plain``: ``devserve --reload --ui plain``, one access-log line per request, to /dev/null;
- ``no-access-log``: ``devserve --reload --ui plain --no-access-log`` to /dev/null;
- ``uvicorn``: ``uvicorn --reload --http h11 --loop uvloop`` with its access log to
  /dev/null: the same shape (a reloading supervisor and one worker), for reference.

Besides req/s and p99, the CPU time the supervisor process itself used during the measured
run (utime + stime from /proc) is reported as a share of one core, and the whole server's
(every process of it), and both per request served: on a shared machine, where the server
often gets less than its core, CPU per request is steadier than req/s. The script prints
each round, the medians, and the median of the per-round ratios against ``plain`` and
``no-access-log``; the target is ``tui`` >= 0.90x.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from throughput import (
    APP,
    APP_DIR,
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    WARMUP_SECONDS,
    BenchError,
    free_port,
    probe,
    run_wrk,
    stop_process,
)

MODES = ("tui", "plain", "no-access-log", "uvicorn")
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    """One measured run of one configuration."""

    mode: str
    rps: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    supervisor_cpu: float
    server_cpu: float
    requests: int

    @property
    def supervisor_us_per_request(self) -> float:
        """Supervisor CPU time per request served, in microseconds."""
        return self.supervisor_cpu_s * 1e6 / max(1, self.requests)

    @property
    def server_us_per_request(self) -> float:
        """CPU time of the whole server per request, in microseconds."""
        return self.server_cpu_s * 1e6 / max(1, self.requests)

    supervisor_cpu_s: float = 0.0
    server_cpu_s: float = 0.0


def argv_for(mode: str, port: int) -> list[str]:
    """The server's command line for ``mode``, pinned to SERVER_CPU."""
    common = [APP, "--app-dir", str(APP_DIR), "--host", HOST, "--port", str(port)]
    common += ["--lifespan", "off", "--reload", "--reload-dir", str(APP_DIR)]
    pin = ["taskset", "-c", SERVER_CPU, sys.executable, "-m"]
    if mode == "uvicorn":
        return [*pin, "uvicorn", *common, "--http", "h11", "--loop", "uvloop"]
    ui = ["--ui", "tui"] if mode == "tui" else ["--ui", "plain"]
    extra = ["--no-access-log"] if mode == "no-access-log" else []
    return [*pin, "devserve", *common, *ui, *extra]


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def family(pid: int) -> list[int]:
    """``pid`` and all its live descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [pid], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


@contextlib.contextmanager
def plain_server(mode: str, port: int) -> Iterator[int]:
    """Run a configuration with stdout and stderr to /dev/null; yield its PID."""
    with open(os.devnull, "w") as devnull:
        proc = subprocess.Popen(
            argv_for(mode, port),
            stdin=subprocess.DEVNULL,
            stdout=devnull,
            stderr=devnull,
            start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "FORCE_COLOR"},
        )
        try:
            yield proc.pid
        finally:
            stop_process(proc)


@contextlib.contextmanager
def tmux_server(port: int, screens: list[str]) -> Iterator[int]:
    """Run ``--ui tui`` in a private tmux server's 120x40 pane; yield devserve's PID."""
    name = f"devserve-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tmux = ["taskset", "-c", CLIENT_CPU, "tmux", "-L", name, "-f", "/dev/null"]
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "NO_COLOR", "TMUX"}}
    env["TERM"] = "xterm-256color"
    with tempfile.TemporaryDirectory(prefix="devserve-bench-") as tmp:
        pidfile = Path(tmp) / "pid"
        inner = f"echo $$ > {shlex.quote(str(pidfile))}; exec {shlex.join(argv_for('tui', port))}"
        command = f"sh -c {shlex.quote(inner)}"
        subprocess.run(
            [*tmux, "new-session", "-d", "-s", "b", "-x", "120", "-y", "40", command],
            env=env,
            check=True,
            timeout=10,
        )
        query = [*tmux, "display-message", "-p"]
        server_pid = int(subprocess.check_output([*query, "#{pid}"], text=True, timeout=10))
        socket_path = subprocess.check_output([*query, "#{socket_path}"], text=True, timeout=10)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not pidfile.exists() or not pidfile.read_text().strip():
                if time.monotonic() > deadline:
                    raise BenchError("devserve did not start in tmux")
                time.sleep(0.01)
            pid = int(pidfile.read_text())
            yield pid
            screens.append(
                subprocess.check_output([*tmux, "capture-pane", "-p", "-t", "b"], text=True)
            )
        finally:
            with contextlib.suppress(NameError, ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + STOP_TIMEOUT
                while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(server_pid, signal.SIGTERM)
            Path(socket_path.strip()).unlink(missing_ok=True)


def wait_ready(port: int) -> None:
    """Poll until GET / answers 200 (bounded)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while not probe(port):
        if time.monotonic() > deadline:
            raise BenchError(f"no 200 on port {port} within {READY_TIMEOUT:.0f} s")
        time.sleep(0.01)


def measure(mode: str, duration: int, screens: list[str]) -> Round:
    """Start ``mode`` fresh, warm it up, measure one wrk run and the CPU it took."""
    port = free_port()
    server = tmux_server(port, screens) if mode == "tui" else plain_server(mode, port)
    with server as pid:
        wait_ready(port)
        run_wrk(port, WARMUP_SECONDS)
        pids = family(pid)
        before = {p: cpu_ticks(p) for p in pids}
        started = time.monotonic()
        result = run_wrk(port, duration)
        elapsed = time.monotonic() - started
        after = {p: cpu_ticks(p) for p in pids}
    spent = {p: max(0, after[p] - before[p]) / TICKS for p in pids}
    return Round(
        mode,
        result.rps,
        result.p99_ms,
        result.non_2xx,
        result.socket_errors,
        supervisor_cpu=spent[pid] / elapsed,
        server_cpu=sum(spent.values()) / elapsed,
        requests=round(result.rps * elapsed),
        supervisor_cpu_s=spent[pid],
        server_cpu_s=sum(spent.values()),
    )


def micro(frames: int = 2000) -> None:
    """In-process costs of the dashboard: one frame, one event, drawn to /dev/null.

    Each frame follows one more repeat of the same request (the wrk case: the open log line
    counts up, the figures change), so every frame redraws its changing lines.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from devserve.events import RequestCompleted, ServerStarted  # noqa: PLC0415
    from devserve.tui.feed import record_event  # noqa: PLC0415
    from devserve.tui.live import LiveUI  # noqa: PLC0415
    from devserve.tui.state import DashboardState  # noqa: PLC0415
    from devserve.tui.stats import Stats  # noqa: PLC0415
    from devserve.tui.terminal import Terminal  # noqa: PLC0415

    now = [100.0]
    stats = Stats()
    event = RequestCompleted("GET", "/", 200, 1.5, 0, 13, "127.0.0.1:1", "1.1", "http")

    async def measure_in_loop(ui: LiveUI) -> tuple[float, float, float]:
        ui(ServerStarted(pid=1, urls=("http://127.0.0.1:8000",), app="a:app", startup_ms=5))
        for _ in range(200):  # started by the first event on the loop, as in devserve
            now[0] += 0.1
            ui(event)
            ui.frame()
        started = time.perf_counter()
        for _ in range(frames):
            now[0] += 0.1
            ui(event)
            ui.frame()
        per_frame = (time.perf_counter() - started) / frames
        started = time.perf_counter()
        for _ in range(frames * 50):
            ui(event)
        per_event = (time.perf_counter() - started) / (frames * 50)
        started = time.perf_counter()
        for _ in range(frames * 50):
            record_event(stats, event, now[0])
        per_count = (time.perf_counter() - started) / (frames * 50)
        ui.close()
        return per_frame, per_event, per_count

    with open(os.devnull, "w") as devnull:
        ui = LiveUI(
            DashboardState(stats=stats),
            Terminal(devnull.fileno(), None),
            environ={},
            clock=lambda: now[0],
        )
        per_frame, per_event, per_count = asyncio.run(measure_in_loop(ui))
    print(f"frame (one changed request line + figures): {per_frame * 1e3:.3f} ms")
    print(f"dashboard per event (a repeat, collapsed): {per_event * 1e6:.2f} us")
    print(f"session stats per event (every mode): {per_count * 1e6:.2f} us")
    print(f"at 10 frames/s the frames take {per_frame * 10 * 100:.1f}% of a core")


def main() -> None:
    """Run the rounds, print every figure, the medians and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--micro", action="store_true", help="only the in-process costs")
    args = parser.parse_args()
    if args.micro:
        micro()
        return
    screens: list[str] = []
    rounds: list[dict[str, Round]] = []
    print(f"== wrk -t1 -c32 -d{args.duration}s, {args.rounds} rounds, server CPU {SERVER_CPU}")
    for index in range(args.rounds):
        order = MODES[index % len(MODES) :] + MODES[: index % len(MODES)]
        results = {}
        for mode in order:
            res = measure(mode, args.duration, screens)
            results[mode] = res
            print(
                f"round {index + 1} {mode:<14} {res.rps:>9.0f} req/s  p99 {res.p99_ms:6.2f} ms"
                f"  supervisor CPU {res.supervisor_cpu:6.1%}  server CPU {res.server_cpu:6.1%}"
                f"  CPU/request: supervisor {res.supervisor_us_per_request:5.0f} us,"
                f" server {res.server_us_per_request:5.0f} us"
                f"  non-2xx {res.non_2xx}  socket errors {res.socket_errors}",
                flush=True,
            )
        rounds.append(results)
    print("== medians")
    medians = {}
    for mode in MODES:
        medians[mode] = {
            key: statistics.median(getattr(r[mode], key) for r in rounds)
            for key in (
                "rps",
                "p99_ms",
                "supervisor_cpu",
                "server_cpu",
                "supervisor_us_per_request",
                "server_us_per_request",
            )
        }
        m = medians[mode]
        print(
            f"{mode:<14} {m['rps']:>9.0f} req/s  p99 {m['p99_ms']:6.2f} ms"
            f"  supervisor CPU {m['supervisor_cpu']:6.1%}  server CPU {m['server_cpu']:6.1%}"
            f"  CPU/request: supervisor {m['supervisor_us_per_request']:5.0f} us,"
            f" server {m['server_us_per_request']:5.0f} us"
        )
    ratios = {
        f"tui/{base}": statistics.median(r["tui"].rps / r[base].rps for r in rounds)
        for base in ("plain", "no-access-log", "uvicorn")
    }
    for name, value in ratios.items():
        print(f"req/s {name:<18} {value:.3f} (median of per-round ratios)")
    cpu_ratios = {
        f"tui/{base}": statistics.median(
            r["tui"].server_us_per_request / r[base].server_us_per_request for r in rounds
        )
        for base in ("plain", "no-access-log")
    }
    for name, value in cpu_ratios.items():
        print(f"server CPU per request {name:<18} {value:.3f} (median of per-round ratios)")
    tui_ok = min(ratios["tui/plain"], ratios["tui/no-access-log"]) >= 0.90
    print(f"target tui >= 0.90x plain and no-access-log: {'met' if tui_ok else 'NOT met'}")
    last = screens[-1] if screens else ""
    print("== last tui screen (tail)")
    print("\n".join(line for line in last.splitlines() if line.strip())[-1200:])
    if args.json:
        payload = {
            "rounds": [{m: asdict(r) for m, r in rnd.items()} for rnd in rounds],
            "medians": medians,
            "ratios": ratios,
            "cpu_per_request_ratios": cpu_ratios,
        }
        print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
