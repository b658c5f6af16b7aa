"""HTTPS: time to first response with ``--https`` (cold and warm), and TLS requests/s.

Usage::

    python bench/tls.py [--runs N] [--rounds N] [--duration S] [--json]

1. Time to first HTTPS response: from spawning ``devserve hello:app --https --cert-dir D`` to
   the first ``200`` over TLS (polled every 5 ms with short-timeout connects, bounded by 10 s).
   *Cold*: D is a fresh empty directory, so the CA and the leaf are generated. *Warm*: D
   already holds them, so they are only read and checked. Median of N runs each, interleaved
   cold, warm, cold, ... The probe does not verify the certificate (it cannot trust a CA that
   does not exist yet); after the runs one request is made that does verify against the CA.
2. TLS throughput: ``wrk -t1 -c32 -d<S>s --latency https://...`` (keep-alive: the handshake is
   paid once per connection), server pinned to CPU 0 and wrk to CPU 1. devserve and uvicorn
   (``--http h11 --loop uvloop``) are given the same certificate files with
   ``--ssl-certfile/--ssl-keyfile`` (the devserve leaf). Rounds alternate between the two
   servers; the median of the per-round ratios devserve/uvicorn is reported.

Everything listens on 127.0.0.1; every server runs in its own session and is stopped
(SIGTERM, 5 s, SIGKILL) when its measurement ends. Helpers come from ``bench/throughput.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from throughput import (
    APP,
    APP_DIR,
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    WARMUP_SECONDS,
    WRK_CONNECTIONS,
    WRK_THREADS,
    BenchError,
    environment,
    free_port,
    median_ratio,
    parse_wrk,
    read_log,
    stop_process,
)

READY_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.005
CONNECT_TIMEOUT_S = 0.2
REQUEST_TIMEOUT_S = 5.0


def devserve_argv(port: int, tls_args: list[str]) -> list[str]:
    """The devserve command line for the bench app with ``tls_args``."""
    common = [APP, "--app-dir", str(APP_DIR), "--host", HOST, "--port", str(port)]
    common += ["--no-access-log", "--lifespan", "off", *tls_args]
    return [sys.executable, "-m", "devserve", *common]


def uvicorn_argv(port: int, tls_args: list[str]) -> list[str]:
    """The uvicorn command line for the bench app with ``tls_args``."""
    common = [APP, "--app-dir", str(APP_DIR), "--host", HOST, "--port", str(port)]
    common += ["--no-access-log", "--lifespan", "off", "--http", "h11", "--loop", "uvloop"]
    return [sys.executable, "-m", "uvicorn", *common, *tls_args]


@contextlib.contextmanager
def spawned(argv: list[str], log: IO[str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` pinned to SERVER_CPU in its own session; always stop it."""
    proc = subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *argv],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        stop_process(proc)


def https_probe(port: int, context: ssl.SSLContext) -> bool:
    """True when one GET / over TLS on ``port`` answers 200."""
    try:
        with socket.create_connection((HOST, port), timeout=CONNECT_TIMEOUT_S) as raw:
            raw.settimeout(REQUEST_TIMEOUT_S)
            with context.wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                head = sock.recv(64)
    except OSError:
        return False
    return head.startswith(b"HTTP/1.1 200 ")


def unverified_context() -> ssl.SSLContext:
    """A client context that accepts any certificate (only for timing the first response)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def time_to_first_https(cert_dir: Path) -> float:
    """Milliseconds from spawning ``devserve --https`` to its first TLS 200."""
    port = free_port()
    context = unverified_context()
    argv = devserve_argv(port, ["--https", "--cert-dir", str(cert_dir)])
    with tempfile.NamedTemporaryFile("w+", prefix="bench-tls-", suffix=".log") as log:
        started = time.perf_counter()
        with spawned(argv, log) as proc:
            deadline = started + READY_TIMEOUT_S
            while time.perf_counter() < deadline:
                if proc.poll() is not None:
                    raise BenchError(f"devserve exited with {proc.returncode}: {read_log(log)}")
                if https_probe(port, context):
                    return (time.perf_counter() - started) * 1000.0
                time.sleep(POLL_INTERVAL_S)
            raise BenchError(f"no HTTPS 200 within {READY_TIMEOUT_S:.0f} s: {read_log(log)}")


def verify_once(cert_dir: Path) -> None:
    """Serve once more and make one request that verifies the chain against the CA."""
    port = free_port()
    context = ssl.create_default_context(cafile=str(cert_dir / "ca.pem"))
    argv = devserve_argv(port, ["--https", "--cert-dir", str(cert_dir)])
    with (
        tempfile.NamedTemporaryFile("w+", prefix="bench-tls-", suffix=".log") as log,
        spawned(argv, log),
    ):
        deadline = time.perf_counter() + READY_TIMEOUT_S
        while not https_probe(port, context):
            if time.perf_counter() > deadline:
                raise BenchError(f"verified request failed: {read_log(log)}")
            time.sleep(POLL_INTERVAL_S)


def bench_first_response(runs: int, workdir: Path) -> dict[str, Any]:
    """Cold and warm time to first HTTPS response, interleaved."""
    warm_dir = workdir / "warm"
    time_to_first_https(warm_dir)  # creates the CA and the leaf once
    cold: list[float] = []
    warm: list[float] = []
    for run in range(runs):
        cold.append(time_to_first_https(workdir / f"cold-{run}"))
        warm.append(time_to_first_https(warm_dir))
        print(f"  run {run + 1}: cold {cold[-1]:.0f} ms, warm {warm[-1]:.0f} ms", flush=True)
    verify_once(warm_dir)
    return {
        "cold_ms": cold,
        "warm_ms": warm,
        "cold_median_ms": statistics.median(cold),
        "warm_median_ms": statistics.median(warm),
    }


def run_wrk_https(port: int, duration_s: int) -> dict[str, Any]:
    """wrk over HTTPS, pinned to CLIENT_CPU."""
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}"]
    argv += [f"-d{duration_s}s", "--latency", f"https://{HOST}:{port}/"]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + 30, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    result = parse_wrk(done.stdout)
    return {"rps": result.rps, "p99_ms": result.p99_ms, "errors": result.socket_errors}


def throughput_round(name: str, files: tuple[Path, Path], duration_s: int) -> dict[str, Any]:
    """One round on a fresh server given the certificate files: warm-up, then measure."""
    port = free_port()
    tls_args = ["--ssl-certfile", str(files[0]), "--ssl-keyfile", str(files[1])]
    argv = (devserve_argv if name == "devserve" else uvicorn_argv)(port, tls_args)
    context = unverified_context()
    with (
        tempfile.NamedTemporaryFile("w+", prefix=f"bench-{name}-", suffix=".log") as log,
        spawned(argv, log) as proc,
    ):
        deadline = time.perf_counter() + READY_TIMEOUT_S
        while not https_probe(port, context):
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise BenchError(f"{name} did not serve HTTPS: {read_log(log)}")
            time.sleep(POLL_INTERVAL_S)
        run_wrk_https(port, WARMUP_SECONDS)
        return run_wrk_https(port, duration_s)


def bench_throughput(rounds: int, duration_s: int, workdir: Path) -> dict[str, Any]:
    """Interleaved TLS throughput rounds, devserve then uvicorn."""
    cert_dir = workdir / "warm"
    files = (cert_dir / "server.pem", cert_dir / "server-key.pem")
    per_round = []
    for number in range(1, rounds + 1):
        ours = throughput_round("devserve", files, duration_s)
        theirs = throughput_round("uvicorn", files, duration_s)
        per_round.append({"devserve": ours, "uvicorn": theirs})
        print(
            f"  round {number}: devserve {ours['rps']:,.0f} req/s (p99 {ours['p99_ms']:.2f} ms), "
            f"uvicorn {theirs['rps']:,.0f} req/s (p99 {theirs['p99_ms']:.2f} ms)",
            flush=True,
        )
    pairs = [(r["devserve"]["rps"], r["uvicorn"]["rps"]) for r in per_round]
    return {
        "rounds": per_round,
        "devserve_median_rps": statistics.median(p[0] for p in pairs),
        "uvicorn_median_rps": statistics.median(p[1] for p in pairs),
        "median_ratio": median_ratio(pairs),
    }


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and print a summary (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold/warm runs each")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per server")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        workdir = Path(tmp)
        print("time to first HTTPS response (devserve --https):", flush=True)
        first = bench_first_response(args.runs, workdir)
        print("TLS throughput (wrk, keep-alive):", flush=True)
        throughput = bench_throughput(args.rounds, args.duration, workdir)
    results = {"environment": environment(), "first_response": first, "throughput": throughput}
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(
            f"cold median {first['cold_median_ms']:.0f} ms, warm median "
            f"{first['warm_median_ms']:.0f} ms; devserve {throughput['devserve_median_rps']:,.0f}"
            f" req/s vs uvicorn {throughput['uvicorn_median_rps']:,.0f} req/s, median ratio "
            f"{throughput['median_ratio']:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
