"""Tests for the pure helpers of devserve.workerproc (no processes)."""

from __future__ import annotations

import types
from pathlib import Path

from devserve.workerproc import third_party_modules


def _module(name: str, filename: str | None) -> types.ModuleType:
    module = types.ModuleType(name)
    if filename is not None:
        module.__file__ = filename
    return module


def test_third_party_modules_leave_out_project_devserve_builtin_and_known(tmp_path: Path) -> None:
    project, site = tmp_path / "project", tmp_path / "site"
    modules = {
        "__main__": _module("__main__", str(site / "x.py")),
        "sys": _module("sys", None),
        "devserve.worker": _module("devserve.worker", str(site / "devserve/worker.py")),
        "main": _module("main", str(project / "main.py")),
        "fastapi": _module("fastapi", str(site / "fastapi/__init__.py")),
        "pydantic": _module("pydantic", str(site / "pydantic/__init__.py")),
        "anyio._backends._asyncio": _module("a", str(site / "anyio/_backends/_asyncio.py")),
    }
    assert third_party_modules(modules, [str(project)]) == (
        "anyio._backends._asyncio",
        "fastapi",
        "pydantic",
    )
    # A forked worker starts with the fork server's preloads: only newer imports count.
    known = frozenset({"fastapi", "pydantic"})
    assert third_party_modules(modules, [str(project)], known) == ("anyio._backends._asyncio",)
