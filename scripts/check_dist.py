"""Build devserve's sdist and wheel, check them, and serve a request from a fresh venv.

    python scripts/check_dist.py [--keep DIR]

Steps (each failure is one line and exit code 1):

1. ``python -m build`` makes the sdist and the wheel in a temporary directory;
2. ``twine check`` validates their metadata (the README renders on PyPI);
3. the wheel must hold every module of ``devserve/``, ``py.typed``, the ``devserve``
   console script, and every file of the repository's ``templates/`` under
   ``devserve/templates/`` (pyproject's force-include); the sdist must hold them too;
4. the wheel is installed into a new virtual environment (its dependencies from the
   package index), where ``devserve --version`` must print the version and
   ``devserve app:app --port 0`` must answer one request, then stop cleanly on SIGINT.

CI runs this before the test suite (``.ci/run``).
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = """
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served from the wheel"})
"""


class CheckFailed(Exception):
    """One check did not hold; the message says which."""


def expected_wheel_files(root: Path) -> set[str]:
    """Paths (inside the wheel) that must be there, from the repository's files."""
    expected = {"devserve/py.typed"}
    expected |= {p.relative_to(root).as_posix() for p in (root / "devserve").rglob("*.py")}
    templates = root / "templates"
    for path in templates.rglob("*") if templates.is_dir() else ():
        if path.is_file() and path.name != ".keep":
            expected.add("devserve/templates/" + path.relative_to(templates).as_posix())
    return expected


def missing(expected: Iterable[str], present: Iterable[str]) -> list[str]:
    """The expected names that are not present, sorted."""
    return sorted(set(expected) - set(present))


def _run(args: list[str], *, cwd: Path = ROOT, timeout_s: float = 600) -> str:
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise CheckFailed(f"{' '.join(args[:4])} ... failed:\n" + "\n".join(tail))
    return result.stdout


def build(out: Path) -> tuple[Path, Path]:
    """Build into `out`; return (sdist, wheel)."""
    _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)])
    [sdist], [wheel] = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    return sdist, wheel


def check_contents(sdist: Path, wheel: Path) -> None:
    """The wheel and the sdist hold the package, its data and the entry point."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        if "devserve = devserve.cli:main" not in archive.read(entry_points).decode():
            raise CheckFailed("the wheel has no 'devserve' console script")
    expected = expected_wheel_files(ROOT)
    if lost := missing(expected, names):
        raise CheckFailed(f"missing from {wheel.name}: {', '.join(lost)}")
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        in_sdist = {name.removeprefix(top + "/") for name in archive.getnames()}
    wanted = {n for n in expected if not n.startswith("devserve/templates/")}
    wanted |= {"templates/" + n.removeprefix("devserve/templates/") for n in expected - wanted}
    if lost := missing(wanted | {"pyproject.toml", "README.md"}, in_sdist):
        raise CheckFailed(f"missing from {sdist.name}: {', '.join(lost)}")


def install_and_serve(wheel: Path, work: Path) -> str:
    """Install `wheel` into a fresh venv; check --version and one request. Return the version."""
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=work)
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", str(wheel)], cwd=work)
    devserve = venv / "bin" / "devserve"
    # Never from the repository: `python -c` would import ./devserve instead of the wheel.
    version = _run([str(devserve), "--version"], cwd=work).strip()
    expected = _run(
        [str(python), "-c", "import devserve; print(devserve.__version__, devserve.__file__)"],
        cwd=work,
    ).split()
    if not expected[1].startswith(str(venv)):
        raise CheckFailed(f"devserve was imported from {expected[1]}, not the fresh venv")
    if version != f"devserve, version {expected[0]}":
        raise CheckFailed(f"devserve --version printed {version!r}")
    templates = _run(
        [
            str(python),
            "-c",
            "import importlib.resources as r; "
            "print(sorted(p.name for p in r.files('devserve').joinpath('templates').iterdir()))",
        ],
        cwd=work,
    ).strip()
    project = work / "project"
    project.mkdir()
    (project / "app.py").write_text(APP)
    _serve_one_request(devserve, project)
    return f"{version}; installed templates: {templates}"


def _serve_one_request(devserve: Path, project: Path) -> None:
    proc = subprocess.Popen(
        [str(devserve), "app:app", "--port", "0"],
        cwd=project,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    if proc.stdout is None:  # pragma: no cover - stdout=PIPE above
        raise CheckFailed("no output pipe")
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if match := re.search(r"on (http://\S+) ", line):
                url = match.group(1)
        if url is None:
            raise CheckFailed("the installed devserve never said where it serves")
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - 127.0.0.1
            body = response.read()
        if body != b"served from the wheel":
            raise CheckFailed(f"unexpected response {body!r}")
        proc.send_signal(signal.SIGINT)
        if (code := proc.wait(15)) != 0:
            raise CheckFailed(f"the installed devserve exited with {code} on Ctrl+C")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()


def main(argv: list[str] | None = None) -> int:
    """Run every check; print what held; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", type=Path, help="build in this directory and keep it")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="devserve-dist-") as scratch:
        work = args.keep or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        try:
            sdist, wheel = build(work / "dist")
            built = time.monotonic()
            _run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)])
            check_contents(sdist, wheel)
            installed = install_and_serve(wheel, work)
        except (CheckFailed, subprocess.TimeoutExpired, OSError) as exc:
            print(f"check_dist: FAILED: {exc}", file=sys.stderr)
            return 1
    build_s, rest_s = built - started, time.monotonic() - built
    print(
        f"check_dist: ok (build {build_s:.0f} s, check/install/serve {rest_s:.0f} s): "
        f"{sdist.name}, {wheel.name}; {installed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
