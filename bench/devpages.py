"""What dev mode (#7) costs non-HTML traffic: devserve with and without it, and uvicorn.

Usage::

    python bench/devpages.py [--rounds N] [--duration S] [--micro]

Every request of a plain-text hello-world passes through devserve's dev layer (the Host
check; under ``--reload`` also the live-reload check, which sends it straight on because
wrk asks for no HTML). This runs ``wrk -t1 -c32`` against, interleaved round by round:

* ``uvicorn``: ``--http h11 --loop uvloop`` (the reference, as in ``bench/throughput.py``);
* ``devserve``: the defaults (dev layer on: Host check, debug pages);
* ``devserve-bare``: ``--no-debug-pages --allowed-hosts '*'`` (no dev layer at all);
* ``devserve-reload``: ``--reload`` (supervisor, live reload on);
* ``devserve-reload-bare``: ``--reload --no-livereload --no-debug-pages --allowed-hosts '*'``.

Server on CPU 0, wrk on CPU 1 (``taskset``), fresh server per round with a 1 s warm-up, as
`bench/throughput.py` does (its helpers are reused). Prints each round, the medians, and
the median per-round ratios against uvicorn and against the bare variant.

On a busy machine the wrk figures drown the difference, so ``--micro`` first measures the
layer itself in process: the same app called directly and through ``DevMode.wrap`` (with
live reload on), alternating batches of `MICRO_CALLS` requests, CPU microseconds per
request of each (median and min over the batches) and their difference.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import throughput as tp  # bench/ is on sys.path when this script runs

VARIANTS = {
    "uvicorn": [],
    "devserve": [],
    "devserve-bare": ["--no-debug-pages", "--allowed-hosts", "*"],
    "devserve-reload": ["--reload"],
    "devserve-reload-bare": [
        "--reload",
        "--no-livereload",
        "--no-debug-pages",
        "--allowed-hosts",
        "*",
    ],
}
_plain_argv = tp.server_argv


def server_argv(name: str, port: int) -> list[str]:
    """The command line of one variant."""
    if name == "uvicorn":
        return _plain_argv("uvicorn", port)
    return [*_plain_argv("devserve", port), *VARIANTS[name]]


MICRO_CALLS = 20_000
MICRO_BATCHES = 30


def micro() -> None:
    """Per-request cost of the dev layer, in process (no sockets)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from devserve.config import Config  # noqa: PLC0415 - only for this measurement
    from devserve.devmode import LiveReload, dev_mode  # noqa: PLC0415

    sys.path.insert(0, str(tp.APP_DIR))
    from hello import app  # type: ignore[import-not-found]  # noqa: PLC0415

    config = Config.from_options({"app": "hello:app", "reload": True})
    dev = dev_mode(
        config, lambda _e: None, urls=("http://127.0.0.1:8000",), livereload=LiveReload("t", "b")
    )
    if dev is None:
        raise tp.BenchError("dev mode is off")
    wrapped = dev.wrap(app)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Any) -> None:
        return None

    async def batch(target: Any) -> float:
        started = time.process_time()  # CPU time: less disturbed by a busy machine
        for _ in range(MICRO_CALLS):
            await target(scope, receive, send)
        return (time.process_time() - started) / MICRO_CALLS * 1e6

    async def run() -> tuple[list[float], list[float]]:
        bare, layered = [], []
        for _ in range(MICRO_BATCHES):
            bare.append(await batch(app))
            layered.append(await batch(wrapped))
        return bare, layered

    bare, layered = asyncio.run(run())
    print(
        f"== in process, {MICRO_BATCHES} alternating batches of {MICRO_CALLS} requests (CPU time)"
    )
    for label, pick in (("median", statistics.median), ("min", min)):
        b, w = pick(bare), pick(layered)
        print(
            f"{label:<6} app alone {b:5.2f} us  app + dev layer {w:5.2f} us"
            f"  dev layer {w - b:5.2f} us/request (non-HTML request)"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--micro", action="store_true", help="also time the layer in process")
    args = parser.parse_args(argv)
    if args.micro:
        micro()
    if args.rounds < 1:
        return 0
    tp.check_prerequisites()
    tp.server_argv = server_argv  # running_server() looks it up at call time
    results: dict[str, list[tp.WrkResult]] = {name: [] for name in VARIANTS}
    print(f"== wrk -t1 -c32 -d{args.duration}s, {args.rounds} rounds, plain-text hello world")
    for index in range(1, args.rounds + 1):
        for name in VARIANTS:
            res = tp.throughput_round(name, args.duration)
            results[name].append(res)
            print(
                f"round {index} {name:<21} {res.rps:>9.0f} req/s  p99 {res.p99_ms:6.2f} ms"
                f"  non-2xx {res.non_2xx}  socket errors {res.socket_errors}",
                flush=True,
            )
    for name, runs in results.items():
        rps = statistics.median(r.rps for r in runs)
        p99 = statistics.median(r.p99_ms for r in runs)
        print(f"median {name:<21} {rps:>9.0f} req/s  p99 {p99:6.2f} ms")

    def ratio(a: str, b: str) -> float:
        return statistics.median(x.rps / y.rps for x, y in zip(results[a], results[b], strict=True))

    for a, b in (
        ("devserve", "uvicorn"),
        ("devserve-bare", "uvicorn"),
        ("devserve", "devserve-bare"),
        ("devserve-reload", "uvicorn"),
        ("devserve-reload", "devserve-reload-bare"),
    ):
        print(f"median per-round req/s ratio {a}/{b}: {ratio(a, b):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
