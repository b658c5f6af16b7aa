"""Reload latency of devserve commits against each other, interleaved on the same load.

Usage::

    python bench/reload_ab.py [--app asgi|fastapi] [--rounds N] [--saves N] REV [REV ...]

Each REV (a commit, branch or tag) is extracted with ``git archive`` into a temporary
directory and served from there (``PYTHONPATH``), with the same command line, pinning and
save-and-poll loop as ``bench/reload.py`` (its functions are reused). Every round runs each
variant once on a fresh project, in an order reversed every other round, so that a noisy
machine weighs on all of them alike. Printed: each run's save-to-new-response p50, then per
variant the median of its p50s and the median of its per-round ratios to the first REV.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reload import (
    APPS,
    POLL_INTERVAL,
    SETTLE_AFTER_READY,
    BenchError,
    check_prerequisites,
    free_port,
    make_project,
    measure_saves,
    raise_system_exit,
    running_server,
    server_argv,
    wait_ready,
)

REPO = Path(__file__).resolve().parent.parent
#: The fork server preloads for a while after start on a busy machine: let it finish.
SETTLE_S = max(SETTLE_AFTER_READY, 2.5)


def extract(rev: str, into: Path) -> Path:
    """Write the ``devserve`` package and its templates at `rev` under `into`."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "devserve", "templates"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {rev}: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, timeout=30, check=True)
    return into


def one_run(source: Path, app: str, saves: int) -> list[float]:
    """Serve `app` with the devserve found in `source`; return the save latencies (ms)."""
    with (
        tempfile.TemporaryDirectory(prefix="reload-ab-") as tmp,
        tempfile.NamedTemporaryFile("w+", prefix="reload-ab-", suffix=".log") as log,
    ):
        project = make_project(app, Path(tmp))
        port = free_port()
        os.environ["PYTHONPATH"] = str(source)  # read by running_server's environment copy
        try:
            with running_server(server_argv("devserve", app, project, port), project, log) as srv:
                wait_ready(srv, port, log)
                time.sleep(SETTLE_S)
                latencies, _ = measure_saves(port, project, 1, saves, POLL_INTERVAL)
        finally:
            del os.environ["PYTHONPATH"]
    return latencies


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revs", nargs="+", metavar="REV", help="commits to compare (first: base)")
    parser.add_argument("--app", choices=sorted(APPS), default="fastapi")
    parser.add_argument("--rounds", type=int, default=4, help="runs per variant (1-20)")
    parser.add_argument("--saves", type=int, default=10, help="saves per run (1-100)")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 1 <= args.saves <= 100:
        parser.error("--rounds must be within 1..20 and --saves within 1..100")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the rounds and print the per-run p50s and the per-variant medians and ratios."""
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_system_exit)
    p50s: dict[str, list[float]] = {rev: [] for rev in args.revs}
    try:
        check_prerequisites()
        print(f"app {args.app}; loadavg at start {os.getloadavg()}", flush=True)
        with tempfile.TemporaryDirectory(prefix="reload-ab-src-") as src:
            sources = {rev: extract(rev, Path(src) / str(i)) for i, rev in enumerate(args.revs)}
            for round_index in range(args.rounds):
                order = args.revs if round_index % 2 == 0 else args.revs[::-1]
                for rev in order:
                    latencies = one_run(sources[rev], args.app, args.saves)
                    if not latencies:
                        raise BenchError(f"{rev}: no save was seen")
                    p50s[rev].append(statistics.median(latencies))
                    shown = " ".join(f"{ms:.0f}" for ms in latencies)
                    print(f"round {round_index} {rev}: p50 {p50s[rev][-1]:.1f} ms [{shown}]")
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    base = args.revs[0]
    for rev in args.revs:
        ratios = [mine / theirs for mine, theirs in zip(p50s[rev], p50s[base], strict=True)]
        print(
            f"{rev}: median p50 {statistics.median(p50s[rev]):.1f} ms; median ratio to {base}"
            f" {statistics.median(ratios):.2f} (per round {' '.join(f'{r:.2f}' for r in ratios)})"
        )
    print(f"loadavg at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
