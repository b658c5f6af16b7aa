"""Where a reload's milliseconds go: timestamps at every step from the save to the new answer.

Usage (from a directory outside any checkout, so ``python -m devserve`` finds the tree under
test and not the working directory's)::

    cd /tmp && PYTHONPATH=/path/to/tree python /path/to/tree/bench/reload_trace.py \
        [--app asgi|fastapi] [--saves N] [--runs N] [--delay-ms N]

Serves the app as ``bench/reload.py`` does (same command line, pinning and save-and-poll
loop) with ``bench/tracehooks`` first on ``PYTHONPATH``: every devserve process then appends
one line per step to a trace file (``bench/tracehooks/sitecustomize.py``; ``CLOCK_MONOTONIC``
is shared by all processes). For each save the script finds the first occurrence of each
step after the write (worker steps: in the worker that served the new version) and prints
the median time of each step since the write and since the step before, over all saves of
all runs. The hooks cost a few microseconds per step (an ``open``/``write``/``close``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from reload import (
    APPS,
    BETWEEN_SAVES,
    POLL_INTERVAL,
    RELOAD_BOUND,
    BenchError,
    check_prerequisites,
    fetch,
    free_port,
    make_project,
    running_server,
    server_argv,
    wait_ready,
    write_version,
)

HOOKS = Path(__file__).resolve().parent / "tracehooks"
SETTLE_S = 2.5
#: Steps in path order: (label, process: "sup" supervisor, "fs" fork server, "new" worker).
STEPS = (
    ("rust_return", "sup"),
    ("inotify_read", "sup"),
    ("raw_in_loop", "sup"),
    ("batch_made", "sup"),
    ("policy_fed", "sup"),
    ("fork_asked", "sup"),
    ("old_stepped_aside", "old"),  # the worker being replaced holds new connections back
    ("handoff_decoded", "fs"),
    ("spare_go", "new"),
    ("worker_run", "new"),
    ("output_redirected", "new"),
    ("dev_mode_built", "new"),
    ("prepare_start", "new"),
    ("prepare_end", "new"),
    ("runner_called", "new"),
    ("serve_started", "new"),
    ("import_start", "new"),
    ("import_end", "new"),
    ("lifespan_end", "new"),
    ("ready_sent", "new"),
    ("ready_received", "sup"),
    ("swap_done", "sup"),
    ("poll_sent", "bench"),  # the poll that got the new version left the bench (not traced)
    ("connection_made", "new"),
    ("app_first_call", "new"),
    ("app_first_return", "new"),
)


def save_and_poll(port: int, project: Path, version: str) -> tuple[int, int, int] | None:
    """Write `version`; poll until served; return (write, last poll sent, seen) in ns."""
    write_at = time.monotonic_ns()
    write_version(project, version)
    deadline = write_at + int(RELOAD_BOUND * 1e9)
    while time.monotonic_ns() < deadline:
        sent = time.monotonic_ns()
        if fetch(port) == (200, version.encode()):
            return write_at, sent, time.monotonic_ns()
        time.sleep(POLL_INTERVAL)
    return None


Row = tuple[int, int, str, float]  # ns, pid, label, the process's CPU time (ms) then


def read_trace(path: Path) -> list[Row]:
    """Parse the trace file: (ns, pid, label, CPU ms) per line, in time order."""
    rows = []
    for line in path.read_text().splitlines():
        ns, pid, label, *_ = line.split(" ")
        cpu = float(line.rsplit(" cpu=", 1)[1].split(" ", 1)[0])
        rows.append((int(ns), int(pid), label, cpu))
    return sorted(rows)


def steps_of(rows: list[Row], write_at: int, seen: int) -> tuple[dict[str, int], dict[str, float]]:
    """Each step's first time within [write_at, seen] (worker steps: the new worker's).

    Also returns, for the new worker's steps, its CPU time then (ms).
    """
    window = [r for r in rows if write_at <= r[0] <= seen]
    new_pid = next((pid for _, pid, label, _ in window if label == "worker_run"), None)
    found: dict[str, int] = {}
    cpu: dict[str, float] = {}
    for ns, pid, label, used in window:
        kind = dict(STEPS).get(label)
        if kind is None or label in found or (kind == "new" and pid != new_pid):
            continue
        found[label] = ns - write_at
        if kind == "new":
            cpu[label] = used
    return found, cpu


def one_run(app: str, saves: int, delay_ms: int | None) -> list[dict[str, int]]:
    """Serve `app` once with the hooks on; return per-save step offsets (ns since write)."""
    with (
        tempfile.TemporaryDirectory(prefix="reload-trace-") as tmp,
        tempfile.NamedTemporaryFile("w+", prefix="reload-trace-", suffix=".log") as log,
    ):
        project_dir = Path(tmp) / "project"
        project_dir.mkdir()
        project = make_project(app, project_dir)
        trace = Path(tmp) / "trace.txt"
        port = free_port()
        argv = server_argv("devserve", app, project, port)
        if delay_ms is not None:
            argv += ["--reload-delay", str(delay_ms / 1000)]
        saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "DEVSERVE_BENCH_TRACE")}
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(HOOKS), *filter(None, [saved["PYTHONPATH"]])]
        )
        os.environ["DEVSERVE_BENCH_TRACE"] = str(trace)
        results = []
        try:
            with running_server(argv, project, log) as srv:
                wait_ready(srv, port, log)
                time.sleep(SETTLE_S)
                for number in range(1, saves + 1):
                    got = save_and_poll(port, project, f"v{number}")
                    if got is not None:
                        results.append(got)
                    time.sleep(BETWEEN_SAVES)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        rows = read_trace(trace)
    timings = []
    for write_at, sent, seen in results:
        found, cpu = steps_of(rows, write_at, seen)
        found["poll_sent"] = sent - write_at
        found["seen"] = seen - write_at
        timings.append((found, cpu))
    return timings


Timing = tuple[dict[str, int], dict[str, float]]


def report(timings: list[Timing]) -> list[str]:
    """Median per step: since the write, since the previous step, and the worker's CPU."""
    lines = [
        "| step | median ms since write | median ms since previous step "
        "| new worker's CPU ms in the step | saves |",
        "|---|---:|---:|---:|---:|",
    ]
    previous: str | None = None
    for label in [*(name for name, _ in STEPS), "seen"]:
        have = [(t, c) for t, c in timings if label in t]
        if not have:
            continue
        since = statistics.median(t[label] for t, _ in have) / 1e6
        deltas = [t[label] - t[previous] for t, _ in have if previous in t] if previous else []
        step = f"{statistics.median(deltas) / 1e6:.2f}" if deltas else "-"
        used = [c[label] - c[previous] for _, c in have if label in c and previous in c]
        cpu = f"{statistics.median(used):.1f}" if used else ""
        lines.append(f"| {label} | {since:.2f} | {step} | {cpu} | {len(have)} |")
        previous = label
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run, then print the per-step medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=sorted(APPS), default="fastapi")
    parser.add_argument("--saves", type=int, default=15)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--delay-ms", type=int, default=None, help="--reload-delay, in ms")
    args = parser.parse_args(argv)
    if not 1 <= args.saves <= 100 or not 1 <= args.runs <= 10:
        parser.error("--saves must be within 1..100 and --runs within 1..10")
    try:
        check_prerequisites()
        print(f"app {args.app}; loadavg at start {os.getloadavg()}", flush=True)
        timings: list[Timing] = []
        for _ in range(args.runs):
            timings += one_run(args.app, args.saves, args.delay_ms)
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    for line in report(timings):
        print(line)
    print(f"loadavg at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
