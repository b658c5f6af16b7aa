"""The wheel ships ``templates/`` as ``devserve/templates`` and the pages are read from it (#7)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p.name for p in (ROOT / "templates").iterdir() if not p.name.startswith("."))


@pytest.mark.timeout(120)
def test_wheel_contains_the_templates_and_serves_them(tmp_path: Path) -> None:
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("hatchling is not installed (pip install -e '.[test]' brings it)")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = tmp_path.glob("devserve-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"devserve/templates/{name}" for name in TEMPLATES} <= names
    assert {"error.html", "startup.html", "blocked.html", "style.css", "livereload.js"} <= set(
        TEMPLATES
    )
    # Import devserve from the wheel itself (a zip): the pages must come from the package data.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import devserve.pages as p;"
        "assert p.__file__.startswith(sys.argv[1]), p.__file__;"
        "print(len(p.template_text('error.html')), len(p.livereload_script()))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, str(wheel)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    sizes = [int(n) for n in run.stdout.split()]
    assert sizes == [
        len((ROOT / "templates" / "error.html").read_text()),
        len((ROOT / "templates" / "livereload.js").read_bytes()),
    ]
