"""What the log costs: hello-world requests/s with each output mode, against uvicorn's access log.

Usage::

    python bench/logmodes.py [--rounds N] [--duration S] [--json]

Each configuration serves ``bench/apps/hello.py`` (lifespan off) with its stdout and stderr
sent to ``/dev/null``, pinned to CPU 0, and is measured with ``wrk -t1 -c32 -d<S>s
--latency`` pinned to CPU 1 after a 1 s warm-up, on a fresh server per round. Rounds go
through every configuration in turn, so the noise of a shared machine falls on all alike:

* ``devserve --no-access-log`` and ``uvicorn --no-access-log`` (``--http h11 --loop uvloop``):
  nothing per request;
* ``devserve --ui plain`` against ``uvicorn`` with its access log: one line per request.
  devserve's single-process mode writes and flushes every line as it happens (a handler that
  blocks the loop must not hold back the lines of requests already done); uvicorn's logging
  handler flushes per record too;
* ``devserve --ui json``: one JSON object per request;
* ``devserve --reload --ui plain`` and ``--ui json``: the worker sends events to the
  supervisor, which writes them (batched per event-loop iteration).

The script prints every round, the median requests/s and p99 per configuration, and the
median per-round ratios against uvicorn with its access log and against devserve with none.
Everything listens on 127.0.0.1; every server runs in its own session and is stopped
(SIGTERM, 5 s, SIGKILL) when its round ends. Helpers come from ``bench/throughput.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from throughput import (
    APP,
    APP_DIR,
    HOST,
    SERVER_CPU,
    WARMUP_SECONDS,
    BenchError,
    WrkResult,
    check_prerequisites,
    environment,
    free_port,
    median_ratio,
    raise_system_exit,
    run_wrk,
    stop_process,
    wait_ready,
)

_DEVSERVE = [sys.executable, "-m", "devserve"]
_UVICORN = [sys.executable, "-m", "uvicorn"]
_UVICORN_TAIL = ["--http", "h11", "--loop", "uvloop"]

#: name -> (command before the common arguments, arguments after them)
CONFIGS: dict[str, tuple[list[str], list[str]]] = {
    "devserve-no-log": (_DEVSERVE, ["--no-access-log"]),
    "uvicorn-no-log": (_UVICORN, ["--no-access-log", *_UVICORN_TAIL]),
    "devserve-plain": (_DEVSERVE, ["--ui", "plain"]),
    "uvicorn-log": (_UVICORN, _UVICORN_TAIL),
    "devserve-json": (_DEVSERVE, ["--ui", "json"]),
    "devserve-reload-plain": (_DEVSERVE, ["--reload", "--ui", "plain"]),
    "devserve-reload-json": (_DEVSERVE, ["--reload", "--ui", "json"]),
}
BASELINES = ("uvicorn-log", "devserve-no-log")


def argv_for(name: str, port: int) -> list[str]:
    """The command line of configuration ``name`` on ``port``."""
    head, tail = CONFIGS[name]
    common = [APP, "--app-dir", str(APP_DIR), "--host", HOST, "--port", str(port)]
    return [*head, *common, "--lifespan", "off", *tail]


@contextlib.contextmanager
def serving(name: str) -> Iterator[int]:
    """Run configuration ``name`` (output to /dev/null) until its first 200; yield the port."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w+", prefix=f"bench-{name}-", suffix=".log") as log:
        argv = ["taskset", "-c", SERVER_CPU, *argv_for(name, port)]
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_ready(proc, port, started, log)
            yield port
        finally:
            stop_process(proc)


def measure(name: str, duration: int) -> WrkResult:
    """One round: a fresh server, a warm-up, then the measured wrk run."""
    with serving(name) as port:
        run_wrk(port, WARMUP_SECONDS)
        return run_wrk(port, duration)


def bench(rounds: int, duration: int, say: Any) -> dict[str, Any]:
    """Run ``rounds`` rounds over every configuration; return rounds, medians and ratios."""
    per_round: list[dict[str, dict[str, Any]]] = []
    for index in range(1, rounds + 1):
        results = {name: measure(name, duration) for name in CONFIGS}
        for name, res in results.items():
            say(
                f"round {index} {name:<22} {res.rps:>9.0f} req/s  p99 {res.p99_ms:7.2f} ms"
                f"  non-2xx {res.non_2xx}  socket errors {res.socket_errors}"
            )
        per_round.append({name: asdict(res) for name, res in results.items()})
    medians = {
        name: {key: statistics.median(r[name][key] for r in per_round) for key in ("rps", "p99_ms")}
        for name in CONFIGS
    }
    ratios = {
        base: {
            name: median_ratio([(r[name]["rps"], r[base]["rps"]) for r in per_round])
            for name in CONFIGS
        }
        for base in BASELINES
    }
    for name in CONFIGS:
        say(
            f"median {name:<22} {medians[name]['rps']:>9.0f} req/s"
            f"  p99 {medians[name]['p99_ms']:7.2f} ms"
            f"  req/s ratio vs uvicorn-log {ratios['uvicorn-log'][name]:.3f}"
            f"  vs devserve-no-log {ratios['devserve-no-log'][name]:.3f}"
        )
    return {"rounds": per_round, "median": medians, "rps_ratio_over": ratios}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    args = parser.parse_args(argv)
    for name in ("rounds", "duration"):
        if not 1 <= getattr(args, name) <= 100:
            parser.error(f"--{name} must be between 1 and 100")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the results (text, or JSON with --json)."""
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_system_exit)
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        check_prerequisites()
        env = environment()
        say(f"devserve {env['devserve']} vs uvicorn {env['uvicorn']}; loadavg {os.getloadavg()}")
        started = time.monotonic()
        results = {
            "command": " ".join(["python", "bench/logmodes.py", *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%d"),
            "environment": env,
            "logmodes": bench(args.rounds, args.duration, say),
        }
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    say(f"loadavg at end {os.getloadavg()}, elapsed {results['elapsed_s']} s")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
